package policy

import (
	"bytes"
)

// Stage 4, recognize decoded bytes: DER. PKCS#1, PKCS#8 (plain and encrypted, by
// algorithm OID), SEC1 and DSA keys, told apart from the public material of the same
// shapes (SubjectPublicKeyInfo, PKCS#1 public keys, certificates, DigestInfo).

// derElem is one TLV.
type derElem struct {
	tag     byte
	content []byte
}

// derNext reads one DER TLV from b (definite lengths only).
func derNext(b []byte) (derElem, []byte, bool) {
	if len(b) < 2 {
		return derElem{}, nil, false
	}
	tag := b[0]
	if tag&0x1f == 0x1f {
		return derElem{}, nil, false
	}
	l := int(b[1])
	off := 2
	if l&0x80 != 0 {
		n := l & 0x7f
		if n == 0 || n > 4 || len(b) < 2+n {
			return derElem{}, nil, false
		}
		l = 0
		for _, c := range b[2 : 2+n] {
			l = l<<8 | int(c)
		}
		if l < 0 {
			return derElem{}, nil, false
		}
		off += n
	}
	if l > len(b)-off {
		return derElem{}, nil, false
	}
	return derElem{tag: tag, content: b[off : off+l]}, b[off+l:], true
}

// derChildren splits the content of a constructed element into out; at most cap(out)
// children.
func derChildren(b []byte, out []derElem) ([]derElem, bool) {
	for len(b) > 0 {
		if len(out) == cap(out) {
			return nil, false
		}
		e, rest, ok := derNext(b)
		if !ok {
			return nil, false
		}
		out = append(out, e)
		b = rest
	}
	return out, true
}

const (
	tagInteger   = 0x02
	tagBitString = 0x03
	tagOctets    = 0x04
	tagOID       = 0x06
	tagSequence  = 0x30
)

var pkcs8Algorithms = []struct {
	oid  []byte
	kind string
}{
	{[]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}, KindRSAPKCS8},
	{[]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a}, KindRSAPSSPKCS8},
	{[]byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}, KindECPKCS8},
	{[]byte{0x2b, 0x65, 0x70}, KindEd25519PKCS8},
	{[]byte{0x2b, 0x65, 0x6e}, KindX25519PKCS8},
	{[]byte{0x2b, 0x65, 0x71}, KindEd448PKCS8},
	{[]byte{0x2b, 0x65, 0x6f}, KindX448PKCS8},
	{[]byte{0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01}, KindDSAPKCS8},
	{[]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x03, 0x01}, KindDHPKCS8},
	{[]byte{0x2a, 0x86, 0x48, 0xce, 0x3e, 0x02, 0x01}, KindDHPKCS8},
}

func pkcs8Kind(oid []byte) string {
	for _, a := range pkcs8Algorithms {
		if bytes.Equal(oid, a.oid) {
			return a.kind
		}
	}
	// 2.16.840.1.101.3.4.3.17-19 ML-DSA, .20-.31 SLH-DSA, 2.16.840.1.101.3.4.4.1-3 ML-KEM
	nist := []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04}
	if len(oid) == len(nist)+2 && bytes.HasPrefix(oid, nist) {
		switch last := oid[len(oid)-1]; {
		case oid[len(nist)] == 0x03 && last >= 0x11 && last <= 0x13:
			return KindMLDSAPKCS8
		case oid[len(nist)] == 0x03 && last >= 0x14 && last <= 0x1f:
			return KindSLHDSAPKCS8
		case oid[len(nist)] == 0x04 && last >= 0x01 && last <= 0x03:
			return KindMLKEMPKCS8
		}
	}
	return KindPKCS8
}

// isKeyEncryptionOID recognises the algorithms that tools encrypt a PKCS#8 key with
// (EncryptedPrivateKeyInfo): PKCS#5 PBES1 and PBES2, PKCS#12 PBE, scrypt, and the Java
// keystores' key protection. Digests and other algorithms in the same
// SEQUENCE { AlgorithmIdentifier, OCTET STRING } shape (a DigestInfo) are not keys.
func isKeyEncryptionOID(oid []byte) bool {
	var (
		pkcs5  = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05}       // 1.2.840.113549.1.5
		pkcs12 = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01} // 1.2.840.113549.1.12.1
		sun    = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02}             // 1.3.6.1.4.1.42.2
	)
	switch {
	case len(oid) == len(pkcs5)+1 && bytes.HasPrefix(oid, pkcs5):
		// PBES1 (pbeWithMD2/MD5/SHA1And DES/RC2: .1 .3 .4 .6 .10 .11) and PBES2 (.13);
		// not PBKDF2 (.12) or PBMAC1 (.14), which encrypt nothing.
		switch oid[len(pkcs5)] {
		case 1, 3, 4, 6, 10, 11, 13:
			return true
		}
	case len(oid) == len(pkcs12)+1 && bytes.HasPrefix(oid, pkcs12):
		// pbeWithSHAAnd128BitRC4 .. pbeWithSHAAnd40BitRC2-CBC
		return oid[len(pkcs12)] >= 1 && oid[len(pkcs12)] <= 6
	case bytes.Equal(oid, []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x04, 0x0b}):
		return true // scrypt, 1.3.6.1.4.1.11591.4.11
	case len(oid) == len(sun)+3 && bytes.HasPrefix(oid, sun):
		// 1.3.6.1.4.1.42.2.17.1.1 (JKS key protector), 1.3.6.1.4.1.42.2.19.1
		// (PBEWithMD5AndTripleDES, JCEKS)
		return bytes.Equal(oid[len(sun):], []byte{0x11, 0x01, 0x01})
	case len(oid) == len(sun)+2 && bytes.HasPrefix(oid, sun):
		return bytes.Equal(oid[len(sun):], []byte{0x13, 0x01})
	}
	return false
}

func isSmallInt(e derElem, vals ...byte) bool {
	if e.tag != tagInteger || len(e.content) != 1 {
		return false
	}
	for _, v := range vals {
		if e.content[0] == v {
			return true
		}
	}
	return false
}

func allIntegers(es []derElem) bool {
	for _, e := range es {
		if e.tag != tagInteger || len(e.content) == 0 {
			return false
		}
	}
	return true
}

func classifyDER(b []byte) keyBytes {
	outer, rest, ok := derNext(b)
	if !ok || outer.tag != tagSequence || len(rest) > 0 {
		return keyBytes{}
	}
	var esBuf [16]derElem
	es, ok := derChildren(outer.content, esBuf[:0])
	if !ok || len(es) < 2 {
		return keyBytes{}
	}
	switch {
	case len(es) >= 9 && allIntegers(es) && isSmallInt(es[0], 0, 1) && len(es[1].content) >= 32:
		return keyBytes{kind: KindRSAPKCS1}
	case len(es) == 6 && allIntegers(es) && isSmallInt(es[0], 0) && len(es[1].content) >= 32:
		return keyBytes{kind: KindDSA}
	case len(es) == 2 && allIntegers(es) && len(es[0].content) >= 32:
		return keyBytes{public: true} // PKCS#1 public key
	case len(es) >= 3 && isSmallInt(es[0], 0, 1) && es[1].tag == tagSequence && es[2].tag == tagOctets:
		var algBuf [4]derElem
		alg, ok := derChildren(es[1].content, algBuf[:0])
		if !ok || len(alg) == 0 || alg[0].tag != tagOID || len(es[2].content) < 16 {
			return keyBytes{}
		}
		return keyBytes{kind: pkcs8Kind(alg[0].content)}
	case len(es) == 2 && es[0].tag == tagSequence && es[1].tag == tagOctets:
		var algBuf [4]derElem
		alg, ok := derChildren(es[0].content, algBuf[:0])
		if !ok || len(alg) == 0 || alg[0].tag != tagOID || len(es[1].content) < 16 || !isKeyEncryptionOID(alg[0].content) {
			// The same shape with a digest or another algorithm is a DigestInfo or
			// alike, not a key.
			return keyBytes{}
		}
		return keyBytes{kind: KindEncryptedPKCS8}
	case len(es) == 2 && es[0].tag == tagSequence && es[1].tag == tagBitString:
		return keyBytes{public: true} // SubjectPublicKeyInfo
	case len(es) >= 2 && len(es) <= 4 && isSmallInt(es[0], 1) && es[1].tag == tagOctets && len(es[1].content) >= 16:
		for _, e := range es[2:] {
			if e.tag != 0xa0 && e.tag != 0xa1 {
				return keyBytes{}
			}
		}
		return keyBytes{kind: KindECSEC1}
	case len(es) == 3 && es[0].tag == tagSequence && es[1].tag == tagSequence && es[2].tag == tagBitString:
		return keyBytes{public: true} // certificate, CSR or CRL
	}
	return keyBytes{}
}
