package policy

import (
	"bytes"
	"crypto/sha256"
)

// Stage 4, recognize: the SSH.com (SSH2) private key format, inside "---- BEGIN SSH2
// ... PRIVATE KEY ----" markers (keys_pem.go).

// examineSSH2 handles the SSH.com format, whose payload starts with a fixed magic
// number (base64 "P2/56w") after free-form headers.
func (s *keyScanner) examineSSH2(body []byte) {
	k := bytes.Index(body, []byte("P2/56w"))
	if k < 0 {
		return
	}
	b, ok := cleanBase64(body[k:])
	if !ok || len(b) < 16 {
		return
	}
	if !(b[0] == 0x3f && b[1] == 0x6f && b[2] == 0xf9 && b[3] == 0xeb) {
		return
	}
	n := int(b[4])<<24 | int(b[5])<<16 | int(b[6])<<8 | int(b[7])
	if n < 16 || n > len(b)+4 {
		return
	}
	s.add(KindSSH2, sha256.Sum256(b), false)
}
