package policy

import (
	"bytes"
	"crypto/sha256"
)

// Stage 4, recognize: PuTTY key files (.ppk), plain or encrypted.

// scanPuTTY handles PuTTY key files: "PuTTY-User-Key-File-N: alg", headers, the public
// lines, then "Private-Lines: N", the private blob and "Private-MAC:". A file runs from
// a header to the first "Private-Lines:" after it, with every header in between (one may
// sit in a comment); the search for the next file starts after it. Every search resumes
// where the previous one stopped, so the scan is linear whatever the text repeats.
func (s *keyScanner) scanPuTTY(text []byte) error {
	mac, hash := nextFold{pat: "private-mac:"}, nextFold{pat: "private-hash:"}
	for h := indexFold(text, "putty-user-key-file-", 0); h >= 0; {
		if err := s.candidate(); err != nil {
			return err
		}
		p := indexFold(text, "private-lines:", h)
		if p < 0 {
			return nil
		}
		next := indexFold(text, "putty-user-key-file-", p)
		q := p + len("private-lines:")
		for q < len(text) && (text[q] == ' ' || text[q] == '+') {
			q++
		}
		digits := q
		for q < len(text) && text[q] >= '0' && text[q] <= '9' {
			q++
		}
		macAt := mac.from(text, q)
		if hs := hash.from(text, q); macAt < 0 || hs >= 0 && hs < macAt {
			macAt = hs
		}
		if macAt >= 0 && q > digits {
			if err := s.puttyFile(text, h, p, digits, q, macAt); err != nil {
				return err
			}
		}
		h = next
	}
	return nil
}

// puttyFile examines the file whose headers run from h to its "Private-Lines:" at p,
// whose line count runs from digits to q, and whose blob ends at macAt.
func (s *keyScanner) puttyFile(text []byte, h, p, digits, q, macAt int) error {
	// Any "Encryption:" header that is not "none" makes the blob ciphertext; each
	// reading a header allows is tried, so a decoy header cannot hide a key.
	sawNone, encrypted := false, false
	for e := indexFold(text[:p], "encryption:", h); e >= 0; e = indexFold(text[:p], "encryption:", e+1) {
		v := bytes.TrimLeft(text[e+len("encryption:"):p], " +")
		if len(v) >= 4 && equalFold(v[:4], "none") {
			sawNone = true
		} else {
			encrypted = true
		}
	}
	plain := !encrypted || sawNone
	// On one line the blob follows the line count without a separator, and may itself
	// start with digits: try the first few places the count could end.
	first := q
	if q < len(text) && b64Class[text[q]] {
		first = digits + 1
	}
	for end, tries := first, 0; end <= q && tries < 4; end, tries = end+1, tries+1 {
		// Decoding stops at the first byte that is not base64.
		if err := s.charge(1 + base64Extent(text[end:macAt])); err != nil {
			return err
		}
		for _, enc := range [2]bool{true, false} {
			if enc && !encrypted || !enc && !plain {
				continue
			}
			if kind, blob, ok := puttyBlob(text[end:macAt], enc); ok {
				s.add(kind, sha256.Sum256(blob), false)
				return nil
			}
		}
	}
	return nil
}

// nextFold finds the occurrences of a pattern (as indexFold does) for searches whose
// starts only move forward: each search resumes where the previous one stopped.
type nextFold struct {
	pat   string
	at    int // the occurrence found last, or -1 for none after searched
	valid bool
}

func (n *nextFold) from(text []byte, i int) int {
	if n.valid && (n.at < 0 || n.at >= i) {
		return n.at
	}
	n.at, n.valid = indexFold(text, n.pat, i), true
	return n.at
}

// puttyBlob decodes the private blob of a PuTTY key file and checks its structure: whole
// cipher blocks when encrypted, a length-prefixed field when not.
func puttyBlob(b64 []byte, encrypted bool) (string, []byte, bool) {
	blob, ok := cleanBase64(b64)
	if !ok || len(blob) < 16 {
		return "", nil, false
	}
	if encrypted {
		return KindPuTTYEncrypted, blob, len(blob)%16 == 0
	}
	n := int(blob[0])<<24 | int(blob[1])<<16 | int(blob[2])<<8 | int(blob[3])
	return KindPuTTY, blob, n != 0 && n <= len(blob)-4
}
