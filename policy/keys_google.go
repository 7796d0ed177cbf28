package policy

import (
	"bytes"
	"strings"
)

// Stage 4, recognize: Google service-account key files. The key in "private_key" is
// found by the PEM recognizer; what makes it a service-account key is the file around
// it, whose "type" says service_account. Findings of the key are renamed KindGoogleSA.

var trigSA = []byte("service_account")

// serviceAccountKey renames the findings from start to end, those of the "private_key"
// member of an object whose "type" is service_account (the walker's objectFacts).
func (s *keyScanner) serviceAccountKey(start, end int) {
	for j := start; j < end; j++ {
		if !s.findings[j].Malformed {
			s.findings[j].Kind = KindGoogleSA
		}
	}
}

// serviceAccountText renames the PKCS# findings from start on of text that holds a
// Google service-account key file in a form other than JSON (YAML, or JSON that does
// not parse once escaped): the file still names its type.
func (s *keyScanner) serviceAccountText(text []byte, start int) {
	if bytes.Contains(text, trigSA) && bytes.Contains(text, []byte("private_key")) {
		for i := start; i < len(s.findings); i++ {
			if f := &s.findings[i]; !f.Malformed && strings.Contains(f.Kind, "PKCS#") {
				f.Kind = KindGoogleSA
			}
		}
	}
}
