package policy

import (
	"crypto/sha256"
	"strconv"
	"strings"
)

// Stage 1, walk: the scanner's state, the field path of the value being examined, and
// the findings (each one paid for; a key found twice for one field is reported once).

// keyScanner walks one object's JSON once, tracking the field path, and examines only
// the string values that could hold a key.
type keyScanner struct {
	maxDepth int

	// work is what the scan has cost so far, in units of about a byte examined;
	// budget is what it may cost. err is the *KeyLimitError that stopped it.
	work, budget, nextCheck int
	perByte                 int
	done                    <-chan struct{}
	err                     error

	findings []KeyFinding
	// seen holds the (field, digest) of every finding, so that a key found twice for
	// the same field (as it is and percent-decoded, say) is reported once.
	seen map[findingKey]struct{}
	path []pathElem
	// pathBuf backs path for objects of ordinary depth.
	pathBuf [32]pathElem
	// field overrides the path while scanning JSON that was itself inside a string.
	field string
	// nested counts the JSON texts inside strings being walked.
	nested int
	// openPrivate records that the last PEM scan ended inside a private key block.
	openPrivate bool
}

type findingKey struct {
	field  string
	digest [sha256.Size]byte
}

type pathElem struct {
	key   []byte // object member name (unescaped); nil for an array element
	index int
}

func (s *keyScanner) limit(reason string) error {
	return &KeyLimitError{Reason: reason}
}

// candidate pays for one more piece of work: a block, a header, a blob, a JSON text.
func (s *keyScanner) candidate() error {
	return s.charge(workPerCandidate)
}

// currentField renders the path of the value being examined.
func (s *keyScanner) currentField() string {
	if s.nested > 0 {
		return s.field
	}
	var b strings.Builder
	for _, e := range s.path {
		if e.key == nil {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
			continue
		}
		k := safeName(string(e.key))
		if isSimpleKey(k) {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		} else {
			b.WriteByte('[')
			b.WriteString(k)
			b.WriteByte(']')
		}
	}
	return b.String()
}

func isSimpleKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// safeName keeps names from the object (member names, container and env names) out of
// findings when they could carry key material themselves.
func safeName(n string) string {
	if len(n) > maxNameInFindingBytes || mayHoldKey([]byte(n)) {
		return "(name not shown)"
	}
	for i := 0; i < len(n); i++ {
		if n[i] < 0x20 || n[i] == 0x7f {
			return "(name not shown)"
		}
	}
	return n
}

func (s *keyScanner) add(kind string, digest [sha256.Size]byte, malformed bool) {
	s.addAt(s.currentField(), kind, digest, malformed)
}

// addAt records a finding at field unless the same key was already found there. Every
// finding is paid for, so a flood of small keys runs out of budget like any other work.
func (s *keyScanner) addAt(field, kind string, digest [sha256.Size]byte, malformed bool) {
	if !s.spend(workPerFinding + len(field)) {
		return
	}
	k := findingKey{field: field, digest: digest}
	if _, dup := s.seen[k]; dup {
		return
	}
	if s.seen == nil {
		s.seen = make(map[findingKey]struct{})
	}
	s.seen[k] = struct{}{}
	s.findings = append(s.findings, KeyFinding{
		Field:       field,
		Kind:        kind,
		Fingerprint: keyFingerprint(digest),
		Malformed:   malformed,
		digest:      digest,
	})
}

// dropFindings forgets the findings from mark on (those of a walk that failed).
func (s *keyScanner) dropFindings(mark int) {
	for _, f := range s.findings[mark:] {
		delete(s.seen, findingKey{field: f.Field, digest: f.digest})
	}
	s.findings = s.findings[:mark]
}
