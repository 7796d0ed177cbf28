package policy

import (
	"bytes"
	"crypto/sha256"
)

// Stage 4, recognize decoded bytes: every peel that yields bytes (base64, hex, gzip) hands
// them to examineDecoded, and classifyKeyBytes asks each binary recognizer in turn:
// OpenSSH (keys_openssh.go), keystores (keys_keystore.go), DER (keys_der.go). A PGP
// packet (keys_pgp.go) and text are tried after them.

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
