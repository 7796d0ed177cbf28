package policy

import (
	"bytes"
	"encoding/binary"
	"io"
)

// Stage 4, recognize decoded bytes: keystores (PKCS#12, JKS, JCEKS), the containers
// Java, OpenSSL and browsers load keys from. A keystore that holds only certificates (a
// truststore) is public material; one with a key entry is a key, whatever its password,
// since the password usually sits beside it.

const (
	KindPKCS12 = "PKCS#12 keystore with a private key"
	KindJKS    = "Java keystore (JKS) with a private key"
	KindJCEKS  = "Java keystore (JCEKS) with a private or secret key"
)

var (
	// 1.2.840.113549.1.7.1 (PKCS#7 data), the content type of a PFX's authSafe.
	oidPKCS7Data = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01}
	// 1.2.840.113549.1.12.10.1.1 keyBag and .2 pkcs8ShroudedKeyBag, without the last
	// byte.
	oidKeyBagPrefix = []byte{0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01}
)

// classifyKeystore recognises PKCS#12 (PFX), JKS and JCEKS keystores.
func classifyKeystore(b []byte) keyBytes {
	if len(b) >= 8 {
		switch binary.BigEndian.Uint32(b) {
		case 0xFEEDFEED:
			return classifyJavaKeystore(b, KindJKS)
		case 0xCECECECE:
			return classifyJavaKeystore(b, KindJCEKS)
		}
	}
	return classifyPFX(b)
}

// classifyPFX recognises PFX: SEQUENCE { INTEGER 3, ContentInfo { data, [0] authSafe },
// macData? }. The key bags sit in the authSafe's plain data (the key inside is
// encrypted, the bag's type is not); certificates are often in encrypted contents. A PFX
// without a visible key bag is a truststore.
func classifyPFX(b []byte) keyBytes {
	outer, rest, ok := derNext(b)
	if !ok || outer.tag != tagSequence {
		return keyBytes{}
	}
	var esBuf [4]derElem
	es, ok := derChildren(outer.content, esBuf[:0])
	if !ok || len(es) < 2 || !isSmallInt(es[0], 3) || es[1].tag != tagSequence || !bytes.HasPrefix(es[1].content, oidPKCS7Data) {
		return keyBytes{}
	}
	for i := 0; ; {
		k := bytes.Index(es[1].content[i:], oidKeyBagPrefix)
		if k < 0 {
			return keyBytes{public: true}
		}
		i += k + len(oidKeyBagPrefix)
		if i < len(es[1].content) && (es[1].content[i] == 1 || es[1].content[i] == 2) {
			r := keyBytes{kind: KindPKCS12}
			if len(rest) > 0 {
				r.material = b[:len(b)-len(rest)]
			}
			return r
		}
	}
}

// classifyJavaKeystore walks the entries of a JKS or JCEKS keystore: magic, version 1
// or 2, a count, then entries of a tag (1 private key, 2 trusted certificate, 3 secret
// key in JCEKS), an alias and a date. It stops at the first key entry; certificate
// entries are skipped by their lengths.
func classifyJavaKeystore(b []byte, kind string) keyBytes {
	r := bytes.NewReader(b[4:])
	var version, count uint32
	if binary.Read(r, binary.BigEndian, &version) != nil || version < 1 || version > 2 ||
		binary.Read(r, binary.BigEndian, &count) != nil || count == 0 {
		return keyBytes{}
	}
	skip := func(n int64) bool {
		if n < 0 || n > int64(r.Len()) {
			return false
		}
		_, err := r.Seek(n, io.SeekCurrent)
		return err == nil
	}
	for n := uint32(0); n < count; n++ {
		var tag uint32
		var aliasLen uint16
		if binary.Read(r, binary.BigEndian, &tag) != nil || binary.Read(r, binary.BigEndian, &aliasLen) != nil ||
			!skip(int64(aliasLen)+8) {
			return keyBytes{}
		}
		switch tag {
		case 1, 3:
			return keyBytes{kind: kind}
		case 2:
			var typeLen uint16
			var certLen uint32
			if version == 2 && (binary.Read(r, binary.BigEndian, &typeLen) != nil || !skip(int64(typeLen))) {
				return keyBytes{}
			}
			if binary.Read(r, binary.BigEndian, &certLen) != nil || !skip(int64(certLen)) {
				return keyBytes{}
			}
		default:
			return keyBytes{}
		}
	}
	return keyBytes{public: true}
}
