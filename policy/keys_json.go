package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// keyScanner walks one object's JSON once, tracking the field path, and examines only
// the string values that could hold a key.
type keyScanner struct {
	maxCandidates int
	maxDepth      int
	candidates    int

	findings []KeyFinding
	path     []pathElem
	// pathBuf backs path for objects of ordinary depth.
	pathBuf [32]pathElem
	// field overrides the path while scanning JSON that was itself inside a string.
	field string
	// fieldRole records the container/env frames of the string being scanned, so that
	// findings in nested JSON text get the same names.
	nested int
	// openPrivate records that the last PEM scan ended inside a private key block.
	openPrivate bool
}

type pathElem struct {
	key   []byte // object member name (unescaped); nil for an array element
	index int
}

var errNotJSON = errors.New("object is not valid JSON")

func (s *keyScanner) limit(reason string) error {
	return &KeyLimitError{Reason: reason}
}

// candidate counts one more piece of work towards privateKeys.maxCandidates.
func (s *keyScanner) candidate() error {
	s.candidates++
	if s.candidates > s.maxCandidates {
		return s.limit(fmt.Sprintf("more than %d key candidates (privateKeys.maxCandidates)", s.maxCandidates))
	}
	return nil
}

func (s *keyScanner) scanObject(raw []byte) error {
	w := jsonWalker{s: s, b: raw}
	i, err := w.value(w.skipSpace(0), 0)
	if err != nil {
		return err
	}
	if w.skipSpace(i) != len(raw) {
		return errNotJSON
	}
	return nil
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
	s.findings = append(s.findings, KeyFinding{
		Field:       s.currentField(),
		Kind:        kind,
		Fingerprint: keyFingerprint(digest),
		Malformed:   malformed,
		digest:      digest,
	})
}

// jsonWalker is a minimal JSON reader over raw bytes: it validates structure, tracks the
// path and hands string values to the key detector only when a cheap filter says so.
type jsonWalker struct {
	s *keyScanner
	b []byte
	// depth is the decode depth of the text being walked (0 for the object itself).
	depth int
	// strEsc is which escapes the last string value walked held.
	strEsc stringEscapes
}

func (w *jsonWalker) skipSpace(i int) int {
	// Objects as the API server sends them have no space between tokens.
	if i < len(w.b) && notLayout[w.b[i]] {
		return i
	}
	return w.skipLayout(i)
}

// notLayout marks the bytes skipSpace stops at without looking further.
var notLayout = func() (t [256]bool) {
	for c := '!'; c < 256; c++ {
		t[c] = c != '\\' && c != '+'
	}
	return t
}()

// skipLayout is skipSpace past spaces and, inside values, escaped layout.
func (w *jsonWalker) skipLayout(i int) int {
	for i < len(w.b) {
		switch w.b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		case '\\', '+':
			// JSON text inside a value may keep its layout escaped ("\n") or
			// query-encoded ('+' for a space); the object itself may not.
			if w.depth == 0 {
				return i
			}
			j := i
			for j < len(w.b) && w.b[j] == '\\' {
				j++
			}
			if w.b[i] == '\\' && (j == len(w.b) || w.b[j] != 'n' && w.b[j] != 'r' && w.b[j] != 't') {
				return i
			}
			if w.b[i] == '\\' {
				j++
			} else {
				j = i + 1
			}
			i = j
		default:
			return i
		}
	}
	return i
}

func (w *jsonWalker) value(i, nesting int) (int, error) {
	if i >= len(w.b) {
		return i, errNotJSON
	}
	switch c := w.b[i]; {
	case c == '{':
		return w.object(i, nesting+1)
	case c == '[':
		return w.array(i, nesting+1)
	case c == '"':
		end, esc, err := w.stringEnd(i)
		if err != nil {
			return i, err
		}
		w.strEsc = esc
		body := w.b[i+1 : end-1]
		if len(body) < minKeyValueLen {
			return end, nil
		}
		var text []byte
		switch {
		case mayHoldKeyShort(body):
			// Every pass reads "\n" and "\r" as line breaks, so a value with no
			// other escapes is scanned as it is.
			text = body
			if esc == otherEscapes {
				if text, err = unescapeJSON(body); err != nil {
					return i, err
				}
			}
		case esc == otherEscapes && hasUnicodeEscape(body):
			// \uXXXX escapes can spell a trigger ("\u002d" for a dash) that the
			// raw bytes do not show.
			if text, err = unescapeJSON(body); err != nil {
				return i, err
			}
			if !mayHoldKey(text) {
				text = nil
			}
		}
		if text != nil {
			if err := w.s.scanText(text, w.depth); err != nil {
				return i, err
			}
		}
		return end, nil
	case c == 't':
		return w.literal(i, "true")
	case c == 'f':
		return w.literal(i, "false")
	case c == 'n':
		return w.literal(i, "null")
	case c == '-' || c >= '0' && c <= '9':
		j := i + 1
		for j < len(w.b) && (w.b[j] >= '0' && w.b[j] <= '9' || w.b[j] == '.' || w.b[j] == 'e' || w.b[j] == 'E' || w.b[j] == '+' || w.b[j] == '-') {
			j++
		}
		return j, nil
	}
	return i, errNotJSON
}

func (w *jsonWalker) literal(i int, lit string) (int, error) {
	if !bytes.HasPrefix(w.b[i:], []byte(lit)) {
		return i, errNotJSON
	}
	return i + len(lit), nil
}

// stringEscapes says which escapes a JSON string holds.
type stringEscapes uint8

const (
	noEscapes        stringEscapes = iota
	lineBreakEscapes               // only \n and \r
	otherEscapes
)

// stringEnd returns the index just past the closing quote of the string at i, and
// which escapes the string holds. It looks at eight bytes at a time for a quote or a
// backslash: most strings in an object are short, and a call per string to a
// vectorised search costs more than the search.
func (w *jsonWalker) stringEnd(i int) (end int, esc stringEscapes, err error) {
	b := w.b
	j := i + 1
	for stop := j + 64; ; {
		if j >= stop {
			// A long string: vectorised searches pay off.
			return w.longStringEnd(j, esc)
		}
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			if m := hasByte(x, '"') | hasByte(x, '\\'); m != 0 {
				j += bits.TrailingZeros64(m) / 8
				break
			}
			if j += 8; j >= stop {
				break
			}
		}
		if j >= stop && j+8 <= len(b) {
			continue
		}
		for j < len(b) && b[j] != '"' && b[j] != '\\' {
			j++
		}
		if j >= len(b) {
			return 0, esc, errNotJSON
		}
		if b[j] == '"' {
			return j + 1, esc, nil
		}
		if j+1 >= len(b) {
			return 0, esc, errNotJSON
		}
		esc = max(esc, escapeOf(b[j+1]))
		j += 2
	}
}

// longStringEnd is stringEnd from j, inside a string, with escapes esc so far.
func (w *jsonWalker) longStringEnd(j int, esc stringEscapes) (int, stringEscapes, error) {
	b := w.b
	for {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return 0, esc, errNotJSON
		}
		q += j
		for {
			k := bytes.IndexByte(b[j:q], '\\')
			if k < 0 {
				return q + 1, esc, nil
			}
			j += k
			if j+1 >= len(b) {
				return 0, esc, errNotJSON
			}
			esc = max(esc, escapeOf(b[j+1]))
			if j += 2; j > q {
				break // the quote was escaped
			}
		}
	}
}

func escapeOf(c byte) stringEscapes {
	if c == 'n' || c == 'r' {
		return lineBreakEscapes
	}
	return otherEscapes
}

// mayHoldKeyShort is mayHoldKey for the string values of an object, most of which are
// short: a string too short for a base64 run is read eight bytes at a time for the
// bytes that start the other triggers, and handed to mayHoldKey only if one of them
// could start one there.
func mayHoldKeyShort(b []byte) bool {
	if len(b) >= minBase64Run {
		return mayHoldKey(b)
	}
	j := 0
	for ; j+8 <= len(b); j += 8 {
		x := binary.LittleEndian.Uint64(b[j:])
		m := hasByte(x, '-') | hasByte(x, 'k') | hasByte(x, '%')
		for ; m != 0; m &= m - 1 {
			if mayStartTrigger(b, j+bits.TrailingZeros64(m)/8) {
				return mayHoldKey(b)
			}
		}
	}
	for ; j < len(b); j++ {
		if mayStartTrigger(b, j) {
			return mayHoldKey(b)
		}
	}
	return false
}

// mayStartTrigger reports whether b[p] could be part of a trigger: a dash that another
// follows or that ends "age" or "putty" (any case), "kty", or a percent escape.
func mayStartTrigger(b []byte, p int) bool {
	switch b[p] {
	case '-':
		return p+1 < len(b) && b[p+1] == '-' ||
			p >= 3 && equalFold(b[p-3:p], "age") || p >= 5 && equalFold(b[p-5:p], "putty")
	case 'k':
		return p+2 < len(b) && b[p+1] == 't' && b[p+2] == 'y'
	case '%':
		return true
	}
	return false
}

// hasByte sets the high bit of each byte of x that equals c, and possibly of bytes
// above one that does: the lowest bit set is exact.
func hasByte(x uint64, c byte) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	y := x ^ (lo * uint64(c))
	return (y - lo) &^ y & hi
}

// members the object-level checks look at. The values are unescaped JSON strings that
// may share memory with the object.
type objectFacts struct {
	typ, kty   []byte
	d, k       []byte
	hasD, hasK bool
	pkStart    int
	pkEnd      int
	name       []byte
}

func (w *jsonWalker) object(i, nesting int) (int, error) {
	if nesting > maxJSONNesting {
		return i, w.s.limit(fmt.Sprintf("JSON nested deeper than %d levels", maxJSONNesting))
	}
	s := w.s
	start := len(s.findings)
	var facts objectFacts
	facts.pkStart, facts.pkEnd = -1, -1
	i = w.skipSpace(i + 1)
	if i < len(w.b) && w.b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(w.b) || w.b[i] != '"' {
			return i, errNotJSON
		}
		end, esc, err := w.stringEnd(i)
		if err != nil {
			return i, err
		}
		key := w.b[i+1 : end-1 : end-1]
		if esc != noEscapes {
			if key, err = unescapeJSON(key); err != nil {
				return i, err
			}
		}
		i = w.skipSpace(end)
		if i >= len(w.b) || w.b[i] != ':' {
			return i, errNotJSON
		}
		i = w.skipSpace(i + 1)
		if s.nested == 0 {
			s.path = append(s.path, pathElem{key: key})
		}
		before := len(s.findings)
		vstart := i
		i, err = w.value(i, nesting)
		if err != nil {
			return i, err
		}
		if s.nested == 0 {
			s.path = s.path[:len(s.path)-1]
		}
		if w.b[vstart] == '"' && len(key) <= 11 {
			switch string(key) {
			case "type", "kty", "name":
				if i-vstart <= 66 {
					v := w.b[vstart+1 : i-1]
					if w.strEsc != noEscapes {
						v, _ = unescapeJSON(v)
					}
					switch string(key) {
					case "type":
						facts.typ = v
					case "kty":
						facts.kty = v
					case "name":
						facts.name = v
					}
				}
			case "d", "k":
				v, err := unescapeJSON(w.b[vstart+1 : i-1])
				if err == nil {
					if key[0] == 'd' {
						facts.d, facts.hasD = v, true
					} else {
						facts.k, facts.hasK = v, true
					}
				}
			case "private_key":
				facts.pkStart, facts.pkEnd = before, len(s.findings)
			}
		}
		i = w.skipSpace(i)
		if i >= len(w.b) {
			return i, errNotJSON
		}
		if w.b[i] == ',' {
			i = w.skipSpace(i + 1)
			continue
		}
		if w.b[i] == '}' {
			i++
			break
		}
		return i, errNotJSON
	}
	if string(facts.typ) == "service_account" && facts.pkStart >= 0 {
		for j := facts.pkStart; j < facts.pkEnd; j++ {
			if !s.findings[j].Malformed {
				s.findings[j].Kind = KindGoogleSA
			}
		}
	}
	if len(facts.kty) > 0 {
		w.jwk(&facts)
	}
	if s.nested == 0 && len(s.path) >= 2 && len(facts.name) > 0 && len(s.findings) > start {
		// An element of containers/env: give its findings the container or env name.
		parent := string(s.path[len(s.path)-2].key)
		last := s.path[len(s.path)-1]
		if last.key == nil {
			name := safeName(string(facts.name))
			for j := start; j < len(s.findings); j++ {
				f := &s.findings[j]
				switch parent {
				case "containers", "initContainers", "ephemeralContainers":
					if f.Container == "" {
						f.Container = name
					}
				case "env":
					if f.Env == "" {
						f.Env = name
					}
				}
			}
		}
	}
	return i, nil
}

// jwk reports a JSON Web Key that holds private or symmetric key material.
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
	raw, err := base64.RawURLEncoding.DecodeString(string(bytes.TrimRight(material, "=")))
	if err != nil || len(raw) < 16 {
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
	d := sha256.Sum256(raw)
	s.findings = append(s.findings, KeyFinding{Field: field, Kind: kind, Fingerprint: keyFingerprint(d), digest: d})
}

func (w *jsonWalker) array(i, nesting int) (int, error) {
	if nesting > maxJSONNesting {
		return i, w.s.limit(fmt.Sprintf("JSON nested deeper than %d levels", maxJSONNesting))
	}
	s := w.s
	i = w.skipSpace(i + 1)
	if i < len(w.b) && w.b[i] == ']' {
		return i + 1, nil
	}
	var split splitBlock
	for n := 0; ; n++ {
		if s.nested == 0 {
			s.path = append(s.path, pathElem{index: n})
		}
		start := i
		s.openPrivate = false
		var err error
		i, err = w.value(i, nesting)
		if err != nil {
			return i, err
		}
		if s.nested == 0 {
			s.path = s.path[:len(s.path)-1]
		}
		if w.b[start] == '"' {
			err = w.splitElement(&split, w.b[start+1:i-1], n)
		} else if split.open {
			err = w.splitFlush(&split)
		}
		if err != nil {
			return i, err
		}
		i = w.skipSpace(i)
		if i >= len(w.b) {
			return i, errNotJSON
		}
		if w.b[i] == ',' {
			i = w.skipSpace(i + 1)
			continue
		}
		if w.b[i] == ']' {
			if split.open {
				if err := w.splitFlush(&split); err != nil {
					return i, err
				}
			}
			return i + 1, nil
		}
		return i, errNotJSON
	}
}

// splitBlock collects a private key block whose lines are spread over adjacent string
// elements of one array (args: "--key", "-----BEGIN ...", "MII...", "-----END ...").
// Each element is appended at most once, so the work stays linear in the array.
type splitBlock struct {
	open     bool
	index    int // the element holding the BEGIN marker
	findings int // findings before that element
	buf      []byte
}

// splitElement feeds one string element (its raw JSON body) to the collection.
func (w *jsonWalker) splitElement(sp *splitBlock, body []byte, n int) error {
	if sp.open {
		sp.buf = append(sp.buf, '\n')
		if err := appendUnescaped(&sp.buf, body); err != nil {
			return err
		}
		var open, closed bool
		if bytes.Contains(body, []byte("----")) {
			open, closed = splitMarkers(body)
		}
		if !closed && !open {
			return nil
		}
		if err := w.splitFlush(sp); err != nil {
			return err
		}
		if !open {
			return nil
		}
	} else if !w.s.openPrivate {
		return nil
	}
	sp.open, sp.index, sp.findings = true, n, len(w.s.findings)
	sp.buf = sp.buf[:0]
	return appendUnescaped(&sp.buf, body)
}

// splitMarkers reports whether body ends inside a block whose label names a private
// key, and whether it holds an END marker.
func splitMarkers(body []byte) (open, closed bool) {
	var m pemMarker
	for from := 0; nextMarker(body, from, &m); from = m.end {
		if m.begin {
			open = bytes.Contains(m.labelBytes(), []byte("PRIVATE"))
		} else {
			open, closed = false, true
		}
	}
	return open, closed
}

func appendUnescaped(dst *[]byte, body []byte) error {
	if bytes.IndexByte(body, '\\') < 0 {
		*dst = append(*dst, body...)
		return nil
	}
	u, err := unescapeJSON(body)
	if err != nil {
		return err
	}
	*dst = append(*dst, u...)
	return nil
}

// splitFlush scans the collected elements as one value, reported at the element that
// held the BEGIN marker. A key also found in one of the elements alone is not repeated.
func (w *jsonWalker) splitFlush(sp *splitBlock) error {
	s := w.s
	sp.open = false
	if s.nested == 0 {
		s.path = append(s.path, pathElem{index: sp.index})
	}
	before := len(s.findings)
	err := s.scanText(sp.buf, w.depth)
	if s.nested == 0 {
		s.path = s.path[:len(s.path)-1]
	}
	if err != nil {
		return err
	}
	kept := s.findings[:before]
	for _, f := range s.findings[before:] {
		dup := false
		for _, g := range s.findings[sp.findings:before] {
			if g.digest == f.digest {
				dup = true
			}
		}
		if !dup {
			kept = append(kept, f)
		}
	}
	s.findings = kept
	return nil
}

// hasUnicodeEscape reports a "\u" in JSON text: the object may spell with \uXXXX
// escapes what the cheap filter looks for.
func hasUnicodeEscape(b []byte) bool {
	return bytes.Contains(b, []byte(`\u`))
}

// unescapeJSON decodes the body of a JSON string.
func unescapeJSON(b []byte) ([]byte, error) {
	k := bytes.IndexByte(b, '\\')
	if k < 0 {
		return b, nil
	}
	out := make([]byte, 0, len(b))
	for {
		out = append(out, b[:k]...)
		b = b[k:]
		if len(b) < 2 {
			return nil, errNotJSON
		}
		switch c := b[1]; c {
		case '"', '\\', '/':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(b, 2)
			if !ok {
				return nil, errNotJSON
			}
			n := 6
			if utf16.IsSurrogate(r) && len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
				if r2, ok := hex4(b, 8); ok {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r, n = d, 12
					}
				}
			}
			out = utf8.AppendRune(out, r)
			b = b[n:]
			if k = bytes.IndexByte(b, '\\'); k < 0 {
				return append(out, b...), nil
			}
			continue
		default:
			return nil, errNotJSON
		}
		b = b[2:]
		if k = bytes.IndexByte(b, '\\'); k < 0 {
			return append(out, b...), nil
		}
	}
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		v, ok := hexVal(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
