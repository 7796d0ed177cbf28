package policy

import (
	"bytes"
	"crypto/sha256"
)

// Stage 4, recognize: legacy-encrypted PEM ("Proc-Type: 4,ENCRYPTED" and "DEK-Info:"
// headers, as OpenSSL wrote RSA, EC and DSA keys with a passphrase).

// examineLegacyEncrypted handles "Proc-Type: 4,ENCRYPTED" blocks: the payload is
// ciphertext, so its structure is the cipher's: whole blocks after a DEK-Info header.
func (s *keyScanner) examineLegacyEncrypted(label, body []byte) {
	if indexFold(body, "encrypted", 0) < 0 {
		return
	}
	k := indexFold(body, "dek-info:", 0)
	if k < 0 {
		return
	}
	i := k + len("dek-info:")
	for i < len(body) && (body[i] == ' ' || body[i] == '+') {
		i++
	}
	// cipher name, a comma, the IV in hex
	j := i
	for j < len(body) && body[j] != ',' && j-i < 40 {
		j++
	}
	if j >= len(body) || body[j] != ',' {
		return
	}
	ivLen := 16 // DES and DES-EDE3 use 8-byte IVs, AES 16-byte ones
	if indexFold(body[i:j], "aes", 0) >= 0 {
		ivLen = 32
	}
	j++
	if j+ivLen > len(body) {
		return
	}
	for _, c := range body[j : j+ivLen] {
		if _, ok := hexVal(c); !ok {
			return
		}
	}
	j += ivLen
	ct, ok := cleanBase64(body[j:])
	if !ok || len(ct) < 32 || len(ct)%8 != 0 {
		return
	}
	kind := KindLegacyEncrypted
	if alg, _, ok := bytes.Cut(label, []byte(" ")); ok && (string(alg) == "RSA" || string(alg) == "EC" || string(alg) == "DSA") {
		kind = "encrypted " + string(alg) + " private key (legacy PEM, Proc-Type 4,ENCRYPTED)"
	}
	s.add(kind, sha256.Sum256(ct), false)
}
