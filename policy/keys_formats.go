package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"math/bits"
	"strings"
)

// keyBytes is what a decoded payload turned out to be.
type keyBytes struct {
	kind   string // a private key of this kind
	public bool   // public material (a public key or certificate), not a key
	// material is the part of the payload the fingerprint is taken over: the key
	// without bytes that trail it. Nil means the whole payload.
	material []byte
}

// fingerprintOf is the digest a finding of r in payload b carries.
func (r keyBytes) digest(b []byte) [sha256.Size]byte {
	if r.material != nil {
		return sha256.Sum256(r.material)
	}
	return sha256.Sum256(b)
}

// classifyKeyBytes recognises a decoded key by its framing only: DER structure of PKCS#1,
// PKCS#8 (plain and encrypted), SEC1 and DSA keys, the OpenSSH container, and the
// keystores that hold keys (PKCS#12, JKS, JCEKS). It never does the key's mathematics.
// DER followed by other bytes is a key too (OpenSSL reads the first element and stops).
func classifyKeyBytes(b []byte) keyBytes {
	if bytes.HasPrefix(b, []byte("openssh-key-v1\x00")) {
		return classifyOpenSSH(b)
	}
	if isSSHPublicBlob(b) {
		return keyBytes{public: true}
	}
	if r := classifyKeystore(b); r.kind != "" || r.public {
		return r
	}
	if len(b) > 0 && b[0] == 0x30 {
		if _, rest, ok := derNext(b); ok && len(rest) > 0 {
			head := b[:len(b)-len(rest)]
			if r := classifyDER(head); r.kind != "" {
				r.material = head
				return r
			}
			return keyBytes{}
		}
		return classifyDER(b)
	}
	return keyBytes{}
}

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

// sshString reads one uint32-length-prefixed string.
func sshString(b []byte) ([]byte, []byte, bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	if n > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}

func classifyOpenSSH(b []byte) keyBytes {
	b = b[len("openssh-key-v1\x00"):]
	cipher, b, ok := sshString(b)
	if !ok {
		return keyBytes{}
	}
	var kdf, kdfOpts []byte
	if kdf, b, ok = sshString(b); !ok {
		return keyBytes{}
	}
	if kdfOpts, b, ok = sshString(b); !ok || len(b) < 4 {
		return keyBytes{}
	}
	_, _ = kdf, kdfOpts
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	b = b[4:]
	if n == 0 || n > 16 {
		return keyBytes{}
	}
	for i := uint32(0); i < n; i++ {
		if _, b, ok = sshString(b); !ok {
			return keyBytes{}
		}
	}
	priv, _, ok := sshString(b)
	if !ok || len(priv) < 8 {
		return keyBytes{}
	}
	if string(cipher) == "none" {
		// Unencrypted: the section starts with two equal check integers.
		if !bytes.Equal(priv[0:4], priv[4:8]) {
			return keyBytes{}
		}
		return keyBytes{kind: KindOpenSSH}
	}
	if len(priv)%8 != 0 {
		return keyBytes{}
	}
	return keyBytes{kind: KindOpenSSHEncrypted}
}

// isSSHPublicBlob recognises an SSH public key in wire format ("ssh-rsa", ...).
func isSSHPublicBlob(b []byte) bool {
	name, rest, ok := sshString(b)
	if !ok || len(name) < 7 || len(name) > 64 || len(rest) < 16 {
		return false
	}
	return bytes.HasPrefix(name, []byte("ssh-")) || bytes.HasPrefix(name, []byte("ecdsa-")) || bytes.HasPrefix(name, []byte("sk-"))
}

type pgpKind int

const (
	pgpNone pgpKind = iota
	pgpSecret
	pgpPublic
)

// pgpPacket recognises an OpenPGP secret or public key packet: a packet header whose
// length fits the data, then the layout of a key packet of version 3 to 6 with a known
// public-key algorithm, its public fields parsed in full (MPIs in their minimal form),
// and for a secret key a valid S2K usage octet after them. Random values of 48 to 96
// bytes pass a header and a version byte alone several times in 100,000; they
// essentially never pass the whole layout.
func pgpPacket(b []byte) pgpKind {
	tag, body, ok := pgpHeader(b)
	if !ok {
		return pgpNone
	}
	switch tag {
	case 5, 7:
		rest, ok := pgpPublicPart(body)
		if !ok || len(rest) < 3 || !pgpS2KUsage(rest[0]) {
			// The usage octet, then secret material or S2K fields.
			return pgpNone
		}
		return pgpSecret
	case 6, 14:
		if _, ok := pgpPublicPart(body); ok {
			return pgpPublic
		}
	}
	return pgpNone
}

// pgpHeader reads the header of the packet at the start of b (old or new format) and
// returns its tag and body. A key packet has a definite length: partial and
// indeterminate lengths are not read.
func pgpHeader(b []byte) (byte, []byte, bool) {
	if len(b) < 2 || b[0]&0x80 == 0 {
		return 0, nil, false
	}
	var tag byte
	var n, off int
	if b[0]&0x40 != 0 { // new format
		tag = b[0] & 0x3f
		switch l := int(b[1]); {
		case l < 192:
			n, off = l, 2
		case l < 224:
			if len(b) < 3 {
				return 0, nil, false
			}
			n, off = (l-192)<<8+int(b[2])+192, 3
		case l == 255:
			if len(b) < 6 {
				return 0, nil, false
			}
			n, off = int(b[2])<<24|int(b[3])<<16|int(b[4])<<8|int(b[5]), 6
		default:
			return 0, nil, false
		}
	} else {
		tag = (b[0] >> 2) & 0x0f
		switch b[0] & 3 {
		case 0:
			n, off = int(b[1]), 2
		case 1:
			if len(b) < 3 {
				return 0, nil, false
			}
			n, off = int(b[1])<<8|int(b[2]), 3
		case 2:
			if len(b) < 5 {
				return 0, nil, false
			}
			n, off = int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4]), 5
		default:
			return 0, nil, false
		}
	}
	if n < 0 || n > len(b)-off {
		return 0, nil, false
	}
	return tag, b[off : off+n], true
}

// pgpPublicPart parses the public part of a key packet's body (RFC 4880 5.5.2, RFC 9580
// 5.5.2, and version 5 of LibrePGP) and returns what follows it.
func pgpPublicPart(body []byte) ([]byte, bool) {
	if len(body) < 1 {
		return nil, false
	}
	var algo byte
	var rest []byte
	switch v := body[0]; v {
	case 3: // version, creation time, validity days, algorithm
		if len(body) < 8 {
			return nil, false
		}
		algo, rest = body[7], body[8:]
		return pgpAlgorithmFields(algo, rest)
	case 4: // version, creation time, algorithm
		if len(body) < 6 {
			return nil, false
		}
		algo, rest = body[5], body[6:]
		return pgpAlgorithmFields(algo, rest)
	case 5, 6: // version, creation time, algorithm, octet count of the public fields
		if len(body) < 10 {
			return nil, false
		}
		algo = body[5]
		n := int(body[6])<<24 | int(body[7])<<16 | int(body[8])<<8 | int(body[9])
		rest = body[10:]
		if n < 0 || n > len(rest) {
			return nil, false
		}
		after, ok := pgpAlgorithmFields(algo, rest[:n])
		if !ok || len(after) != 0 {
			return nil, false
		}
		return rest[n:], true
	}
	return nil, false
}

// pgpAlgorithmFields parses the public fields of algorithm algo at the start of b and
// returns what follows them; an algorithm RFC 4880 and RFC 9580 do not define is not
// a key.
func pgpAlgorithmFields(algo byte, b []byte) ([]byte, bool) {
	mpis := 0
	switch algo {
	case 1, 2, 3: // RSA: n, e
		mpis = 2
	case 16: // Elgamal: p, g, y
		mpis = 3
	case 17: // DSA: p, q, g, y
		mpis = 4
	case 18, 19, 22: // ECDH, ECDSA, EdDSA (legacy): curve OID, point
		var ok bool
		if b, ok = pgpCurveOID(b); !ok {
			return nil, false
		}
		if b, ok = pgpReadMPI(b); !ok {
			return nil, false
		}
		if algo == 18 {
			// KDF parameters: their size, then reserved octet, hash and cipher.
			if len(b) < 1 || b[0] < 3 || b[0] == 0xff || int(b[0]) > len(b)-1 {
				return nil, false
			}
			b = b[1+int(b[0]):]
		}
		return b, true
	case 25, 27: // X25519, Ed25519
		return pgpFixed(b, 32)
	case 26: // X448
		return pgpFixed(b, 56)
	case 28: // Ed448
		return pgpFixed(b, 57)
	default:
		return nil, false
	}
	for i := 0; i < mpis; i++ {
		var ok bool
		if b, ok = pgpReadMPI(b); !ok {
			return nil, false
		}
	}
	return b, true
}

func pgpFixed(b []byte, n int) ([]byte, bool) {
	if len(b) < n {
		return nil, false
	}
	return b[n:], true
}

// pgpReadMPI reads one multiprecision integer: a two-octet bit count, then the octets
// of a number whose highest set bit is the one the count says.
func pgpReadMPI(b []byte) ([]byte, bool) {
	if len(b) < 3 {
		return nil, false
	}
	nbits := int(b[0])<<8 | int(b[1])
	n := (nbits + 7) / 8
	if nbits == 0 || n > len(b)-2 || bits.Len8(b[2]) != nbits-8*(n-1) {
		return nil, false
	}
	return b[2+n:], true
}

// pgpCurveOID reads a curve OID as a key packet holds it: one octet of length (neither
// 0 nor 0xff), then the OID's DER content without tag and length.
func pgpCurveOID(b []byte) ([]byte, bool) {
	if len(b) < 1 {
		return nil, false
	}
	n := int(b[0])
	if n == 0 || n == 0xff || n > len(b)-1 {
		return nil, false
	}
	oid := b[1 : 1+n]
	// Every curve is under 1.2 or 1.3 (0x2a, 0x2b), and the last arc ends its encoding.
	if oid[0] != 0x2a && oid[0] != 0x2b || oid[n-1]&0x80 != 0 {
		return nil, false
	}
	return b[1+n:], true
}

// pgpS2KUsage recognises the octet that says how a secret key is protected: 0 (not
// encrypted), 253 (AEAD), 254 (CFB with a SHA-1 check), 255 (CFB with a checksum), or
// a symmetric algorithm (the legacy form).
func pgpS2KUsage(c byte) bool {
	switch c {
	case 0, 253, 254, 255:
		return true
	case 1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13:
		// IDEA, TripleDES, CAST5, Blowfish, AES-128/192/256, Twofish, Camellia-128/192/256
		return true
	}
	return false
}

// signatures are the base64 forms, at each of the three byte alignments, of text that
// starts a key; they find a key encoded at any offset of a longer base64 run.
var signatures = func() (out []base64Signature) {
	for _, s := range []string{"-----BEGIN", "-----begin", "openssh-key-v1", "PRIVATE KEY", "service_account", "PuTTY-User-Key", "AGE-SECRET-KEY", "\"private_key\"", "---- BEGIN", "\"kty\""} {
		for pad := 0; pad < 3; pad++ {
			src := append(make([]byte, pad), s...)
			enc := base64.StdEncoding.EncodeToString(src)
			first := (pad*8 + 5) / 6 // first character made only of s
			last := (len(src)*8)/6 - 1
			if pad == 0 {
				first = 0
			}
			lead := first % 4
			if last <= first {
				continue
			}
			out = append(out, base64Signature{enc: []byte(enc[first : last+1]), lead: lead})
		}
	}
	return out
}()

type base64Signature struct {
	enc  []byte
	lead int // characters of the 4-character group before enc
}

// scanBase64 decodes the base64 runs of text (outside the PEM blocks that scanPEM
// recognised) and examines what they decode to.
func (s *keyScanner) scanBase64(text []byte, masked [][2]int, depth int) error {
	mi := 0
	for i := 0; i < len(text); {
		for mi < len(masked) && masked[mi][1] <= i {
			mi++
		}
		if mi < len(masked) && i >= masked[mi][0] {
			i = masked[mi][1]
			continue
		}
		if !b64Class[text[i]] {
			i++
			continue
		}
		stop := len(text)
		if mi < len(masked) {
			stop = masked[mi][0]
		}
		blob, next := collectBlob(text[:stop], i)
		if len(blob) >= minBase64Run && isHex(blob) {
			if hexMayHoldKey(blob) {
				if err := s.examineHex(blob, depth); err != nil {
					return err
				}
			}
		} else if len(blob) >= minBase64Run {
			found := len(s.findings)
			if afterEscapedBreak(text, i) {
				// The letter of an escaped line break ("\n") glued to the run.
				if err := s.examineBlob(text[:i+1], blob[1:], depth); err != nil {
					return err
				}
			}
			if len(s.findings) == found {
				if err := s.examineBlob(text[:i], blob, depth); err != nil {
					return err
				}
			}
		}
		i = next
	}
	return nil
}

// afterEscapedBreak reports whether text[i] is the letter of an escaped line break.
func afterEscapedBreak(text []byte, i int) bool {
	return i > 0 && text[i-1] == '\\' && (text[i] == 'n' || text[i] == 'r')
}

// collectBlob gathers the base64 characters from i: one run, or several runs separated
// by line breaks (real or escaped) or spaces when they look like wrapped lines. Runs that
// are joined are copied once, into a buffer of the size they need.
func collectBlob(text []byte, i int) ([]byte, int) {
	n, runs, next := blobRuns(text, i, nil)
	if runs == 1 {
		return text[i : i+n], next
	}
	blob := make([]byte, 0, n)
	blobRuns(text, i, func(run []byte) { blob = append(blob, run...) })
	return blob, next
}

// blobRuns walks the runs that make one blob from i, handing each to add if it is not
// nil. It returns how many base64 characters they hold, how many runs there are and
// where the blob ends.
func blobRuns(text []byte, i int, add func(run []byte)) (n, runs, next int) {
	for {
		j := i
		for j < len(text) && b64Class[text[j]] {
			j++
		}
		run := text[i:j]
		for j < len(text) && text[j] == '=' {
			j++
		}
		n, runs = n+len(run), runs+1
		if add != nil {
			add(run)
		}
		if j > i+len(run) || len(run) < minWrapLine {
			return n, runs, j // padded, or too short to be a wrapped line
		}
		// Skip one separator: whitespace, or an escaped line break.
		k := j
		for k < len(text) {
			c := text[k]
			if c == ' ' || c == '\n' || c == '\r' || c == '\t' {
				k++
				continue
			}
			if c == '\\' {
				m := k
				for m < len(text) && text[m] == '\\' {
					m++
				}
				if m < len(text) && (text[m] == 'n' || text[m] == 'r') {
					k = m + 1
					continue
				}
			}
			break
		}
		if k == j || k >= len(text) || !b64Class[text[k]] {
			return n, runs, j
		}
		i = k
	}
}

func (s *keyScanner) examineBlob(before, blob []byte, depth int) error {
	// A decode, a classification and a pass for the signatures.
	if err := s.charge(workPerCandidate + 3*len(blob)); err != nil {
		return err
	}
	if i := bytes.IndexAny(blob, "-_"); i >= minBase64Run {
		// Base64 directly followed by a dash-word ("-----END ...", "-prod"): the run
		// before the dash is tried on its own first.
		found := len(s.findings)
		if err := s.examineBase64At(blob[:i], false, depth); err != nil || len(s.findings) > found {
			return err
		}
	}
	url := bytes.ContainsAny(blob, "-_")
	if url && bytes.ContainsAny(blob, "+/") {
		// A run that starts or ends with dashes from surrounding text.
		blob = bytes.Trim(blob, "-_")
		url = bytes.ContainsAny(blob, "-_")
		if url && bytes.ContainsAny(blob, "+/") {
			return nil
		}
	}
	start := len(s.findings)
	defer func() {
		if kubeconfigKeyData(before) {
			for i := start; i < len(s.findings); i++ {
				if f := &s.findings[i]; !f.Malformed && !strings.HasPrefix(f.Kind, kindPrefixKubeconfig) {
					f.Kind = kindPrefixKubeconfig + f.Kind
				}
			}
		}
	}()
	if err := s.examineBase64At(blob, url, depth); err != nil {
		return err
	}
	if len(s.findings) > start || url {
		return nil
	}
	// The key may start at another alignment than the run (base64 of longer text, or
	// characters glued in front).
	// One pass over the run finds every place a signature starts; each alignment is
	// examined once.
	tried, left := [4]bool{true}, 3
	var v uint32 // the values of the three characters from p, six bits each
	for q := 0; q < len(blob) && left > 0; q++ {
		v = (v<<6 | b64StdValue[blob[q]]) & (1<<18 - 1)
		p := q - 2
		if p < 0 || signatureStart[v/64]&(1<<(v%64)) == 0 {
			continue
		}
		for _, i := range signaturesByStart[v] {
			sig := signatures[i]
			if p < sig.lead || tried[(p-sig.lead)%4] || !bytes.HasPrefix(blob[p:], sig.enc) {
				continue
			}
			a := (p - sig.lead) % 4
			tried[a], left = true, left-1
			if err := s.charge(len(blob)); err != nil {
				return err
			}
			if err := s.examineBase64At(blob[a:], false, depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// signatureStart marks the first three characters of every signature, by their
// values in the standard base64 alphabet; signaturesByStart lists the signatures that
// start with each.
var (
	signatureStart    [1 << 18 / 64]uint64
	signaturesByStart = map[uint32][]int{}
)

func init() {
	for k, sig := range signatures {
		i := b64Triple(sig.enc[0], sig.enc[1], sig.enc[2])
		signatureStart[i/64] |= 1 << (i % 64)
		signaturesByStart[i] = append(signaturesByStart[i], k)
	}
}

// b64StdValue is the value of each character of the standard base64 alphabet; the
// others read as 0, which only costs a comparison with a signature.
var b64StdValue = func() (t [256]uint32) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = uint32(i)
	}
	return t
}()

func b64Triple(a, b, c byte) uint32 {
	return b64StdValue[a]<<12 | b64StdValue[b]<<6 | b64StdValue[c]
}

func (s *keyScanner) examineBase64At(b64 []byte, url bool, depth int) error {
	if len(b64)%4 == 1 {
		b64 = b64[:len(b64)-1]
	}
	data, ok := decodeBase64Loose(b64, url)
	if !ok {
		return nil
	}
	return s.examineDecoded(data, depth, false)
}

// examineDecoded examines bytes decoded from text at depth (base64, hex, gzip): a
// key's or keystore's bytes, a PGP packet, gzip, or text with keys in it. With
// anyText, bytes that do not look like text (a tar archive) are scanned as text too.
func (s *keyScanner) examineDecoded(data []byte, depth int, anyText bool) error {
	if r := classifyKeyBytes(data); r.kind != "" {
		s.add(r.kind, r.digest(data), false)
		return nil
	}
	if pgpPacket(data) == pgpSecret {
		s.add(KindPGP, sha256.Sum256(data), false)
		return nil
	}
	if isGzip(data) {
		return s.examineGzip(data, depth+1)
	}
	if anyText || looksLikeText(data) {
		return s.scanText(data, depth+1)
	}
	return nil
}

func kubeconfigKeyData(before []byte) bool {
	if len(before) > 24 {
		before = before[len(before)-24:]
	}
	return bytes.Contains(before, []byte("client-key-data"))
}

// looksLikeText is true for decoded bytes that are worth scanning as text again.
func looksLikeText(b []byte) bool {
	if len(b) > 512 {
		b = b[:512]
	}
	bad := 0
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c == 0x7f {
			bad++
		}
	}
	return bad*20 <= len(b)
}
