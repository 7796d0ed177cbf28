package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
)

// Stage 4, recognize: JSON Web Keys with private (d) or symmetric (k) material. The
// walker gathers an object's kty, crv, d and k (objectFacts, keys_walk.go) and calls jwk
// at the object's end; JWKs written as YAML are turned into JSON and walked the same way.

// jwk reports a JSON Web Key that holds private or symmetric key material. The member
// counts only when it could be a key: it decodes (base64url, or standard base64, which
// some libraries also load), it is as long as a key of its type and curve, and it is not
// filler such as "AAAA…" or "xxxx…". Placeholders ("changeme", "<private exponent>",
// "...", "") are not keys.
func (w *jsonWalker) jwk(f *objectFacts) {
	s := w.s
	var material []byte
	kind := ""
	switch {
	case f.hasD:
		material = f.d
		switch kty := string(f.kty); kty {
		case "RSA", "EC", "OKP", "AKP":
			kind = KindJWKPrivate + " (kty " + kty + ")"
		default:
			kind = KindJWKPrivate
		}
	case string(f.kty) == "oct" && f.hasK:
		material = f.k
		kind = KindJWKSymmetric
	default:
		return
	}
	// A decode, a count of distinct bytes and a look for a short repeated pattern.
	if !s.spend(workPerCandidate + 4*len(material)) {
		return
	}
	raw, ok := decodeJWKMember(material)
	if !ok || len(raw) < jwkMinLength(f) || isFiller(raw) {
		return
	}
	field := s.currentField()
	if s.nested == 0 {
		if f.hasD {
			field += ".d"
		} else {
			field += ".k"
		}
	}
	s.addAt(field, kind, sha256.Sum256(raw), false)
}

// decodeJWKMember decodes a JWK member: base64url as RFC 7517 has it, or standard
// base64 (with '+' and '/'), padded or not. A value mixing both alphabets is neither.
func decodeJWKMember(m []byte) ([]byte, bool) {
	m = bytes.TrimRight(m, "=")
	std := bytes.ContainsAny(m, "+/")
	if std && bytes.ContainsAny(m, "-_") {
		return nil, false
	}
	return decodeBase64Loose(m, !std)
}

// jwkMinLength is the fewest bytes the private member of a JWK like f holds: the size
// of the curve's scalar or seed where kty and crv say it, 64 for an RSA private
// exponent, 16 otherwise (an oct key included). An EC scalar may be one byte short,
// as encoders that drop a leading zero write it.
func jwkMinLength(f *objectFacts) int {
	if !f.hasD {
		return 16
	}
	switch string(f.kty) {
	case "RSA":
		return 64
	case "EC":
		switch string(f.crv) {
		case "P-256", "secp256k1":
			return 31
		case "P-384":
			return 47
		case "P-521":
			return 65
		}
	case "OKP":
		switch string(f.crv) {
		case "Ed25519", "X25519":
			return 32
		case "Ed448":
			return 57
		case "X448":
			return 56
		}
	}
	return 16
}

// isFiller reports whether b is too uniform to be key material: fewer distinct byte
// values than a quarter of its length (up to 64; random bytes of any length have far
// more), or one short pattern repeated. It counts b's bytes once; the look for a
// pattern compares b with itself shifted, at most maxFillerPeriod times and only while
// b has that few distinct bytes, each comparison stopping at the first difference.
func isFiller(b []byte) bool {
	var seen [256]bool
	distinct := 0
	for _, c := range b {
		if !seen[c] {
			seen[c] = true
			distinct++
		}
	}
	if distinct < min(len(b)/4, 64) {
		return true
	}
	// A pattern of p bytes repeated has at most p distinct bytes.
	for p := 1; p <= min(distinct, maxFillerPeriod) && 2*p <= len(b); p++ {
		if bytes.Equal(b[p:], b[:len(b)-p]) {
			return true
		}
	}
	return false
}

// maxFillerPeriod is the longest pattern isFiller looks for.
const maxFillerPeriod = 16

// JWKs written as YAML ("kty: EC" and "d: ..." on lines of their own, as in Helm values
// or a configuration file): each block of "name: value" lines that names a kty is
// turned into the JSON object it stands for and walked as a JWK.

// scanJWKYAML finds the blocks of text whose lines are "name: value" pairs at one
// indentation (a "- " list item starts a block of its own) and walks those with a kty.
func (s *keyScanner) scanJWKYAML(text []byte, depth int) error {
	if err := s.charge(len(text)); err != nil {
		return err
	}
	var members map[string]string
	indent := -1
	flush := func() error {
		if _, ok := members["kty"]; ok && len(members) > 1 {
			obj, err := json.Marshal(members)
			if err == nil {
				if _, err := s.walkNested(obj, depth); err != nil {
					return err
				}
			}
		}
		members, indent = nil, -1
		return nil
	}
	for line := range textLines(text) {
		name, value, at, item, ok := yamlMember(line)
		if !ok || item || at != indent {
			if err := flush(); err != nil {
				return err
			}
		}
		if !ok {
			continue
		}
		if members == nil {
			members = map[string]string{}
		}
		indent = at
		if len(members) < 64 {
			members[string(name)] = string(value)
		}
	}
	return flush()
}

// yamlMember reads a line "  name: value" or "- name: value": the name, the value
// without quotes, where the name starts and whether the line starts a list item.
func yamlMember(line []byte) (name, value []byte, at int, item, ok bool) {
	line = bytes.TrimRight(line, " \t\r")
	for at < len(line) && line[at] == ' ' {
		at++
	}
	if bytes.HasPrefix(line[at:], []byte("- ")) {
		item = true
		at += 2
		for at < len(line) && line[at] == ' ' {
			at++
		}
	}
	rest := line[at:]
	c := bytes.IndexByte(rest, ':')
	if c <= 0 {
		return nil, nil, 0, false, false
	}
	name = rest[:c]
	for _, ch := range name {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_') {
			return nil, nil, 0, false, false
		}
	}
	value = bytes.TrimSpace(rest[c+1:])
	if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
		value = value[1 : len(value)-1]
	}
	return name, value, at, item, true
}
