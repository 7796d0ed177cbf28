package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strings"
)

// b64Class marks the bytes of both base64 alphabets.
var b64Class = func() (t [256]bool) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['+'], t['/'], t['-'], t['_'] = true, true, true, true
	return t
}()

var (
	trigDashes   = []byte("----")
	trigKty      = []byte("kty")
	trigSA       = []byte("service_account")
	trigAgeUpper = []byte("AGE-SECRET-KEY-")
	trigAgeLower = []byte("age-secret-key-")
)

// triggerSet says which kinds of key text a value could hold, and so which passes
// over it are worth running.
type triggerSet uint8

const (
	trigPEM       triggerSet = 1 << iota // "----": PEM and SSH2 markers
	trigPuTTY                            // "PuTTY-User-Key-File-", any case
	trigAge                              // "AGE-SECRET-KEY-", any case
	trigJWK                              // "kty"
	trigBase64                           // a base64 run of minBase64Run, not only hex
	trigPercent                          // percent escapes
	trigWireGuard                        // "PrivateKey" and '=', any case
)

// mayHoldKey is the cheap filter in front of everything else: it is true for any text
// that could hold a key in one of the supported forms, and false for most text that
// cannot. A Google service-account key needs no trigger of its own: its private_key
// holds a key in one of those forms.
func mayHoldKey(b []byte) bool {
	return findTriggers(b, true) != 0
}

// findTriggers reports the triggers that occur in b; with first, it stops at the first
// one found. The searches are vectorised. PEM markers and the PuTTY and age headers
// are all found in one walk over the dashes of b: the headers' dashes sit at fixed
// places, so a case-insensitive match costs a comparison per dash.
func findTriggers(b []byte, first bool) triggerSet {
	var t triggerSet
	const dashTriggers = trigPEM | trigPuTTY | trigAge
	for i := 0; i < len(b) && t&dashTriggers != dashTriggers; {
		k := bytes.IndexByte(b[i:], '-')
		if k < 0 {
			break
		}
		p := i + k
		q := p + 1
		for q < len(b) && b[q] == '-' {
			q++
		}
		i = q
		switch {
		case q-p >= len(trigDashes):
			t |= trigPEM
		case p >= 3 && p+12 <= len(b) && equalFold(b[p-3:p+12], "age-secret-key-"):
			t |= trigAge
		case p >= 5 && p+15 <= len(b) && equalFold(b[p-5:p+15], "putty-user-key-file-"):
			t |= trigPuTTY
		default:
			continue
		}
		if first {
			return t
		}
	}
	if hasBase64Run(b) {
		if t |= trigBase64; first {
			return t
		}
	}
	if containsKty(b) {
		if t |= trigJWK; first {
			return t
		}
	}
	if hasPercentEscapes(b) {
		if t |= trigPercent; first {
			return t
		}
	}
	if mayHoldWireGuard(b) {
		t |= trigWireGuard
	}
	return t
}

// containsKty is bytes.Contains(b, trigKty) without the setup cost of a general
// search, which dominates on the short strings that most values are.
func containsKty(b []byte) bool {
	if len(b) > 256 {
		// Long text, where base64 puts a 'k' every 64 bytes or so.
		return bytes.Contains(b, trigKty)
	}
	for i := 0; ; {
		k := bytes.IndexByte(b[i:], 'k')
		if k < 0 {
			return false
		}
		i += k + 1
		if i+2 <= len(b) && b[i] == 't' && b[i+1] == 'y' {
			return true
		}
	}
}

// indexFold returns the first index from from of the lowercase ASCII pattern p in b, in
// any case. It keys on p's first byte, which the callers choose to be rare.
func indexFold(b []byte, p string, from int) int {
	c0 := p[0]
	c1 := c0
	if c0 >= 'a' && c0 <= 'z' {
		c1 = c0 - 32
	}
	last := len(b) - len(p) + 1
	// Next occurrence of each case of the first byte, found lazily so that the search
	// stays linear however often either case appears.
	n0, n1 := -2, -2
	next := func(c byte, i int) int {
		if i >= last {
			return -1
		}
		if k := bytes.IndexByte(b[i:last], c); k >= 0 {
			return i + k
		}
		return -1
	}
	for i := from; i < last; {
		if n0 != -1 && n0 < i {
			n0 = next(c0, i)
		}
		if c1 != c0 && n1 != -1 && n1 < i {
			n1 = next(c1, i)
		}
		j := n0
		if c1 != c0 && n1 >= 0 && (j < 0 || n1 < j) {
			j = n1
		}
		if j < 0 {
			return -1
		}
		if equalFold(b[j:j+len(p)], p) {
			return j
		}
		i = j + 1
	}
	return -1
}

func equalFold(b []byte, lower string) bool {
	for k := 0; k < len(lower); k++ {
		c := b[k]
		if c >= 'A' && c <= 'Z' {
			c += 32
		}
		if c != lower[k] {
			return false
		}
	}
	return true
}

// hasBase64Run reports a run of at least minBase64Run base64 characters that is not
// plain hex (digests are).
func hasBase64Run(b []byte) bool {
	var first [1]int
	return len(base64Runs(b, first[:0], 1)) > 0
}

// base64Runs appends the start of each run of at least minBase64Run base64 characters
// that is not plain hex. It looks at about one byte in minBase64Run/(word length): a
// window that ends in a non-base64 byte cannot hold a run.
func base64Runs(b []byte, dst []int, max int) []int {
	const L = minBase64Run
	i := L - 1
	for i < len(b) && len(dst) < max {
		if !b64Class[b[i]] {
			if isBreakByte(b[i]) {
				if start, ok := wrappedRun(b, i); ok {
					dst = append(dst, start)
				}
			}
			i += L
			continue
		}
		j := i - 1
		lo := i - L + 1
		for j >= lo && b64Class[b[j]] {
			j--
		}
		if j >= lo {
			if isBreakByte(b[j]) {
				if start, ok := wrappedRun(b, j); ok {
					dst = append(dst, start)
				}
			}
			i = j + L
			continue
		}
		// b[lo..i] is a run of L; extend it and check it is not only hex.
		end := i + 1
		for end < len(b) && b64Class[b[end]] {
			end++
		}
		start := lo
		for start > 0 && b64Class[b[start-1]] {
			start--
		}
		if run := b[start:end]; !isHex(run) || hexMayHoldKey(run) {
			dst = append(dst, start)
		}
		i = end + L
	}
	return dst
}

// minWrapLine is the shortest line of wrapped base64 that is joined to the next: tools
// wrap at 76, 64 or 60 (uuencode -m), and people at any width.
const minWrapLine = 16

// isBreakByte reports a byte that can start the break between two wrapped lines.
func isBreakByte(c byte) bool {
	return c == '\n' || c == '\r' || c == '\\' || c == ' ' || c == '\t'
}

// skipBreak returns the index just past the layout at b[k] between two wrapped lines:
// newlines, spaces, tabs and escaped line breaks, at most maxBreak of them; k if none.
func skipBreak(b []byte, k int) int {
	const maxBreak = 16
	for n := 0; n < maxBreak && k < len(b); n++ {
		switch c := b[k]; c {
		case '\n', '\r', ' ', '\t':
			k++
		case '\\':
			m := k
			for m < len(b) && b[m] == '\\' {
				m++
			}
			if m >= len(b) || b[m] != 'n' && b[m] != 'r' {
				return k
			}
			k = m + 1
		default:
			return k
		}
	}
	return k
}

// wrappedRun reports base64 wrapped over several lines around the break at b[p]: the
// line before it and those after it, each of at least minWrapLine characters but the
// last, hold minBase64Run characters together and are not only hex. It returns where
// the line before the break starts. It reads the line before p, which no other break
// reads, and at most about minBase64Run characters after it.
func wrappedRun(b []byte, p int) (int, bool) {
	// Back to the start of the break: p may be its last byte ("\r\n", an indent).
back:
	for n := 0; n < 16 && p > 0; n++ {
		switch c := b[p-1]; {
		case c == '\n' || c == '\r' || c == ' ' || c == '\t' || c == '\\':
			p--
		case (c == 'n' || c == 'r') && p >= 2 && b[p-2] == '\\':
			p -= 2
		default:
			break back
		}
	}
	if p < minWrapLine || !b64Class[b[p-1]] || !b64Class[b[p-minWrapLine]] {
		return 0, false // the line before is too short (words of prose are)
	}
	s := p
	for s > 0 && p-s < minBase64Run && b64Class[b[s-1]] {
		s--
	}
	if p-s < minWrapLine {
		return 0, false
	}
	total, allHex := p-s, isHex(b[s:p])
	for k := p; ; {
		n := skipBreak(b, k)
		if n == k {
			return 0, false
		}
		e := n
		for e < len(b) && e-n < minBase64Run && b64Class[b[e]] {
			e++
		}
		if e == n {
			return 0, false
		}
		total += e - n
		allHex = allHex && isHex(b[n:e])
		if total >= minBase64Run {
			return s, !allHex || hexMayHoldKey(b[s:e])
		}
		if e-n < minWrapLine {
			return 0, false
		}
		k = e
	}
}

func isHex(b []byte) bool {
	for _, c := range b {
		if _, ok := hexVal(c); !ok && c != '-' {
			return false
		}
	}
	return true
}

// hasPercentEscapes reports at least three %XX escapes of characters that appear in
// keys' text forms.
func hasPercentEscapes(b []byte) bool {
	n := 0
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '%')
		if j < 0 || i+j+2 >= len(b) {
			return false
		}
		i += j + 1
		if _, ok := hexVal(b[i]); ok {
			if _, ok := hexVal(b[i+1]); ok {
				n++
				if n >= 3 {
					return true
				}
			}
		}
	}
}

// scanText looks for keys in one decoded text value at the given decode depth.
func (s *keyScanner) scanText(text []byte, depth int) error {
	if depth > s.maxDepth {
		if mayHoldKey(text) {
			return s.limit(fmt.Sprintf("encodings nested deeper than %d levels (privateKeys.maxDecodeDepth)", s.maxDepth))
		}
		return nil
	}
	// Reading the triggers is one pass over the text.
	if err := s.charge(workPerCandidate + len(text)); err != nil {
		return err
	}
	start := len(s.findings)

	if t := bytes.TrimSpace(text); len(t) > 1 && (t[0] == '{' || t[0] == '[') {
		if ok, err := s.scanJSONText(t, depth); err != nil || ok {
			return err
		}
	}
	// Each pass runs only when its trigger occurs in the text, and is paid for first.
	trig := findTriggers(text, false)
	if err := s.charge(bits.OnesCount8(uint8(trig)) * len(text)); err != nil {
		return err
	}
	if trig&trigJWK != 0 {
		// A JWK inside other text: walk each JSON object that starts in it.
		mark := len(s.findings)
		if err := s.scanEmbeddedJSON(text, depth); err != nil {
			return err
		}
		// Or a JWK written as YAML.
		if len(s.findings) == mark && depth < s.maxDepth && bytes.Contains(text, []byte("kty:")) {
			if err := s.scanJWKYAML(text, depth); err != nil {
				return err
			}
		}
	}
	var maskBuf [8][2]int
	masked := maskBuf[:0]
	if trig&trigPEM != 0 {
		var err error
		before := len(s.findings)
		if masked, err = s.scanPEM(text, masked); err != nil {
			return err
		}
		// No key as the text stands, but a marker: it may be a key written as source
		// code or behind prefixes. The text those lines make is scanned once more.
		if len(s.findings) == before && depth < s.maxDepth && mayNeedPeeling(text) {
			if err := s.charge(2 * len(text)); err != nil {
				return err
			}
			if peeled, changed := peelSourceLines(text); changed {
				if err := s.scanText(peeled, depth+1); err != nil {
					return err
				}
			}
		}
	}
	if trig&trigPuTTY != 0 {
		if err := s.scanPuTTY(text); err != nil {
			return err
		}
	}
	if trig&trigAge != 0 {
		s.scanAge(text)
	}
	if trig&trigWireGuard != 0 {
		if err := s.scanWireGuard(text); err != nil {
			return err
		}
	}
	if trig&trigBase64 != 0 {
		if err := s.scanBase64(text, masked, depth); err != nil {
			return err
		}
	}
	if trig&trigPercent != 0 {
		if dec, ok := percentDecode(text); ok {
			if err := s.scanText(dec, depth+1); err != nil {
				return err
			}
		}
	}
	// A Google service-account key file in a form other than JSON (YAML, or JSON that
	// does not parse once escaped) still names its type.
	if len(s.findings) > start && bytes.Contains(text, trigSA) && bytes.Contains(text, []byte("private_key")) {
		for i := start; i < len(s.findings); i++ {
			if f := &s.findings[i]; !f.Malformed && strings.Contains(f.Kind, "PKCS#") {
				f.Kind = KindGoogleSA
			}
		}
	}
	return nil
}

// scanJSONText walks text that is itself a JSON document (a service-account key file, a
// JWK, a kubeconfig in JSON); findings keep the field of the string that held it.
func (s *keyScanner) scanJSONText(t []byte, depth int) (bool, error) {
	mark := len(s.findings)
	end, err := s.walkNested(t, depth)
	if err != nil {
		return false, err
	}
	if end > 0 && onlyLayout(t[end:]) {
		return true, nil
	}
	// Not JSON after all: drop partial results and scan it as text.
	s.dropFindings(mark)
	return false, nil
}

// onlyLayout reports whether b holds only what JSON text inside a value may have
// between tokens: spaces, escaped line breaks and tabs, or '+' (query encoding).
func onlyLayout(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ' ', '\t', '\n', '\r', '+':
		case '\\':
			j := i
			for j < len(b) && b[j] == '\\' {
				j++
			}
			if j == len(b) || b[j] != 'n' && b[j] != 'r' && b[j] != 't' {
				return false
			}
			i = j
		default:
			return false
		}
	}
	return true
}

// scanEmbeddedJSON walks the JSON objects that hold a "kty" member inside other text:
// a JWK after a comment line or bytes of misaligned base64, a JWK followed by PEM
// blocks or notes, a JWK whose quotes are escaped. Each "kty" is tried in the last few
// objects that open before it and after the previous one, so each '{' is tried at most
// once; the bytes walked are charged to the object's budget.
func (s *keyScanner) scanEmbeddedJSON(text []byte, depth int) error {
	floor := 0             // no '{' before this is tried again
	var braces *braceIndex // made on the first object that does not parse
	for from := 0; ; {
		k := indexKty(text, from)
		if k < 0 {
			return nil
		}
		from = k + len(trigKty)
		if k < floor {
			continue
		}
		p := k
		for tries := 0; tries < 4; tries++ {
			p = bytes.LastIndexByte(text[floor:p], '{')
			if p < 0 {
				break
			}
			p += floor
			end, err := s.walkEmbeddedObject(text, p, depth, &braces)
			if err != nil {
				return err
			}
			if end > 0 {
				from = max(from, end)
				break
			}
		}
		if err := s.charge(k - floor); err != nil {
			return err
		}
		floor = max(from, k+1)
	}
}

// indexKty returns the index of the first "kty" in b at or after from, or -1.
func indexKty(b []byte, from int) int {
	if from >= len(b) {
		return -1
	}
	k := bytes.Index(b[from:], trigKty)
	if k < 0 {
		return -1
	}
	return from + k
}

// walkEmbeddedObject walks the JSON object that opens at text[p] and returns the index
// just past it, or 0 if there is none there. An object that does not parse as it is,
// such as one with escaped quotes, is tried again unescaped, to the decode depth.
func (s *keyScanner) walkEmbeddedObject(text []byte, p, depth int, braces **braceIndex) (int, error) {
	if err := s.candidate(); err != nil {
		return 0, err
	}
	end, err := s.walkNested(text[p:], depth)
	if err != nil || end > 0 {
		return p + end, err
	}
	if *braces == nil {
		// One pass over the text finds every object's end, so that a flood of objects
		// that never close costs the text once, not once per object.
		if err := s.charge(len(text)); err != nil {
			return 0, err
		}
		*braces = newBraceIndex(text)
	}
	q := (*braces).closing(p)
	if q < 0 {
		return 0, nil
	}
	obj := text[p:q]
	for d := depth + 1; d <= s.maxDepth && bytes.IndexByte(obj, '\\') >= 0; d++ {
		un, err := unescapeJSON(obj)
		if err != nil {
			return 0, nil
		}
		obj = un
		if err := s.charge(len(obj)); err != nil {
			return 0, err
		}
		end, err := s.walkNested(obj, d)
		if err != nil {
			return 0, err
		}
		if end > 0 {
			return q, nil
		}
	}
	return 0, nil
}

// walkNested walks the JSON value at the start of b, which sits inside a string value,
// at decode depth depth. It returns the index just past the value, or 0 if b does not
// start with one; findings of a failed walk are dropped. Only a *KeyLimitError is
// returned as an error.
func (s *keyScanner) walkNested(b []byte, depth int) (int, error) {
	if s.nested == 0 {
		s.field = s.currentField()
	}
	s.nested++
	defer func() { s.nested-- }()
	// Setting up a reader costs about as much as reading a KiB.
	if err := s.charge(workPerNestedWalk); err != nil {
		return 0, err
	}
	mark := len(s.findings)
	r := nestedReaders.Get().(*jsonReader)
	defer r.releaseNested()
	r.lay = layoutReader{b: b}
	r.dec.Reset(&r.lay, nestedJSONOptions...)
	w := jsonWalker{s: s, dec: &r.dec, depth: depth + 1, stream: true}
	_, _, err := w.value(0)
	end := int(r.dec.InputOffset())
	if cerr := w.charged(); cerr != nil {
		err = cerr
	}
	var limit *KeyLimitError
	if errors.As(err, &limit) {
		return 0, limit
	}
	if err != nil {
		s.dropFindings(mark)
		return 0, nil
	}
	return end, nil
}

// layoutReader reads JSON text that sits inside a string value, where its layout may be
// escaped ("\n" between tokens, as in a value escaped twice) or query-encoded ('+' for a
// space). Outside strings it reads those as spaces, byte for byte, so that offsets stay
// those of the text.
type layoutReader struct {
	b          []byte
	i          int
	inString   bool
	escaped    bool
	blankUntil int // bytes before this are part of an escaped break
	plainUntil int // bytes before this are backslashes that start no break
}

func (r *layoutReader) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.i:])
	for k := range n {
		j := r.i + k
		c := r.b[j]
		switch {
		case j < r.blankUntil:
			p[k] = ' '
		case r.inString:
			switch {
			case r.escaped:
				r.escaped = false
			case c == '\\':
				r.escaped = true
			case c == '"':
				r.inString = false
			}
		case c == '"':
			r.inString = true
		case c == '+':
			if j == 0 || r.b[j-1] != 'e' && r.b[j-1] != 'E' {
				p[k] = ' '
			}
		case c == '\\' && j >= r.plainUntil:
			m := j
			for m < len(r.b) && r.b[m] == '\\' {
				m++
			}
			if m < len(r.b) && (r.b[m] == 'n' || r.b[m] == 'r' || r.b[m] == 't') {
				r.blankUntil = m + 1
				p[k] = ' '
			} else {
				r.plainUntil = m
			}
		}
	}
	r.i += n
	return n, nil
}

// braceIndex holds, for each '{' of a text, the index just past the '}' that closes it
// (counting braces only), found in one pass.
type braceIndex struct {
	opens, closes []int32 // closes[i] closes opens[i]; -1: never closed
}

func newBraceIndex(text []byte) *braceIndex {
	n := bytes.Count(text, []byte{'{'})
	bi := &braceIndex{opens: make([]int32, 0, n), closes: make([]int32, 0, n)}
	open := make([]int32, 0, n) // indexes into opens of the objects not closed yet
	for i, c := range text {
		switch c {
		case '{':
			open = append(open, int32(len(bi.opens)))
			bi.opens = append(bi.opens, int32(i))
			bi.closes = append(bi.closes, -1)
		case '}':
			if n := len(open); n > 0 {
				bi.closes[open[n-1]] = int32(i + 1)
				open = open[:n-1]
			}
		}
	}
	return bi
}

// closing returns the index just past the '}' that closes the '{' at p, or -1.
func (bi *braceIndex) closing(p int) int {
	i, ok := slices.BinarySearch(bi.opens, int32(p))
	if !ok {
		return -1
	}
	return int(bi.closes[i])
}

// pemMarker is a "-----BEGIN LABEL-----" or "-----END LABEL-----" line.
type pemMarker struct {
	begin      bool
	start, end int // the whole marker
	// label is normalised: upper case, words separated by one space.
	label    [maxLabelLen]byte
	labelLen int
}

func (m *pemMarker) labelBytes() []byte { return m.label[:m.labelLen] }

const maxLabelLen = 80

// nextMarker finds the first PEM-style marker of text at or after from.
func nextMarker(text []byte, from int, m *pemMarker) bool {
	for i := from; ; {
		p := indexDashes(text, i)
		if p < 0 {
			return false
		}
		q := p
		for q < len(text) && text[q] == '-' {
			q++
		}
		i = q
		r := q
		for r < len(text) && (text[r] == ' ' || text[r] == '+') {
			r++
		}
		var begin bool
		switch {
		case r+5 <= len(text) && equalFold(text[r:r+5], "begin"):
			begin, r = true, r+5
		case r+3 <= len(text) && equalFold(text[r:r+3], "end"):
			r += 3
		default:
			continue
		}
		// The label runs to the next "----" within maxLabelLen.
		k := scanLabel(text, r, m)
		if k < 0 {
			continue
		}
		e := r + k
		for e < len(text) && text[e] == '-' {
			e++
		}
		if n := e - (r + k); n >= 8 && startsMarkerWord(text[e:]) {
			// Blocks on one line: "-----END A----------BEGIN B-----". The dashes
			// are shared; half of them start the next marker.
			e -= n / 2
		}
		m.begin, m.start, m.end = begin, p, e
		return true
	}
}

// indexDashes returns the index of the first run of at least four dashes in b at or
// after from, or -1. Bodies hold few dashes, so a search for one dash at a time stays
// cheaper than a general search for four.
func indexDashes(b []byte, from int) int {
	for i := from; i < len(b); {
		k := bytes.IndexByte(b[i:], '-')
		if k < 0 {
			return -1
		}
		p := i + k
		q := p + 1
		for q < len(b) && b[q] == '-' {
			q++
		}
		if q-p >= len(trigDashes) {
			return p
		}
		i = q
	}
	return -1
}

// startsMarkerWord reports whether b starts with "BEGIN" or "END", in any case, after
// spaces.
func startsMarkerWord(b []byte) bool {
	b = bytes.TrimLeft(b, " ")
	return len(b) >= 5 && equalFold(b[:5], "begin") || len(b) >= 3 && equalFold(b[:3], "end")
}

// scanLabel reads the label that starts at text[r] and runs to the next "----" within
// maxLabelLen bytes. It stores the label in m normalised, in upper case with words
// separated by one space, and returns where the dashes start, counted from r; -1 if no
// "----" ends it.
func scanLabel(text []byte, r int, m *pemMarker) int {
	limit := min(len(text), r+maxLabelLen)
	n, space := 0, false
	for k := r; k < limit; k++ {
		c := text[k]
		if c == '-' {
			q := k + 1
			for q < limit && text[q] == '-' {
				q++
			}
			if q-k >= len(trigDashes) {
				m.labelLen = n
				return k - r
			}
			space, k = true, q-1
			continue
		}
		u := labelByte[c]
		if u == 0 {
			space = true
			continue
		}
		if space && n > 0 {
			m.label[n] = ' '
			n++
		}
		space = false
		m.label[n] = u
		n++
	}
	return -1
}

// labelByte maps the bytes that make up words of a label to upper case, and the
// others, which separate words, to 0.
var labelByte = func() (t [256]byte) {
	for c := byte('a'); c <= 'z'; c++ {
		t[c] = c - 32
	}
	for c := byte('A'); c <= 'Z'; c++ {
		t[c] = c
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c
	}
	t['#'] = '#'
	return t
}()

// scanPEM finds the PEM-style blocks of text and examines those whose label says
// private key. It appends to masked the spans of the blocks it recognised, private or
// public material, which the base64 scan skips; a block of another label is left to
// the base64 scan.
func (s *keyScanner) scanPEM(text []byte, masked [][2]int) ([][2]int, error) {
	var m, end pemMarker
	ok := nextMarker(text, 0, &m)
	for ok {
		if !m.begin {
			ok = nextMarker(text, m.end, &m)
			continue
		}
		if err := s.candidate(); err != nil {
			return nil, err
		}
		// A block's markers, label and body checks cost more than a candidate.
		if err := s.charge(workPerPEMBlock); err != nil {
			return nil, err
		}
		if !nextMarker(text, m.end, &end) {
			// The text ends inside the block: its lines may go on in the next
			// elements of an array.
			s.openPrivate = bytes.Contains(m.labelBytes(), []byte("PRIVATE"))
			break
		}
		if end.begin {
			m, ok = end, true // no END before the next BEGIN: truncated, not a key
			continue
		}
		label := m.labelBytes()
		switch body := text[m.end:end.start]; {
		case s.examineBlock(label, body):
			masked = append(masked, [2]int{m.start, end.end})
		case s.examineRelabelled(body):
			// A key's body under another label: OpenSSL and Go read the body.
			masked = append(masked, [2]int{m.start, end.end})
		case isPublicLabel(label) && bytes.Equal(label, end.labelBytes()):
			masked = append(masked, [2]int{m.start, end.end})
		}
		ok = nextMarker(text, end.end, &m)
	}
	return masked, nil
}

// isPublicLabel recognises the labels of public material: certificates, requests,
// CRLs, public keys and parameters.
func isPublicLabel(label []byte) bool {
	switch string(label) {
	case "CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE", "CERTIFICATE REQUEST",
		"NEW CERTIFICATE REQUEST", "X509 CRL":
		return true
	}
	return bytes.HasSuffix(label, []byte("PUBLIC KEY")) || bytes.HasSuffix(label, []byte("PUBLIC KEY BLOCK")) ||
		bytes.HasSuffix(label, []byte("PARAMETERS"))
}

// examineBlock examines a block whose label says it holds a key, and reports whether
// the label did.
func (s *keyScanner) examineBlock(label, body []byte) bool {
	if !bytes.Contains(label, []byte("KEY")) {
		return false
	}
	// Examining a body reads it a few times: headers, lines, base64.
	if !s.spend(4 * len(body)) {
		return true
	}
	switch {
	case string(label) == "PGP PRIVATE KEY BLOCK":
		s.examinePGP(body)
	case bytes.HasPrefix(label, []byte("OPENVPN STATIC KEY")):
		s.examineOpenVPN(body)
	case string(label) == "SSH2 ENCRYPTED PRIVATE KEY" || string(label) == "SSH2 PRIVATE KEY":
		s.examineSSH2(body)
	case bytes.HasSuffix(label, []byte("PRIVATE KEY")):
		s.examinePrivatePEM(label, body)
	default:
		return false
	}
	return true
}

// examineRelabelled examines the body of a block whose label does not say private
// key (PUBLIC KEY, CERTIFICATE, parameters, any other): tools that load a key look at
// the body, not the label. It reports whether the body was a key.
func (s *keyScanner) examineRelabelled(body []byte) bool {
	if bytes.IndexByte(body, ':') >= 0 {
		body = afterHeaders(body)
	}
	// Certificates are the blocks most text holds: their first bytes tell them apart
	// from a key, so only a body that starts like a key is decoded.
	if !startsLikeKey(body) {
		return false
	}
	if !s.spend(2 * len(body)) {
		return false
	}
	der, ok := cleanBase64(body)
	if !ok {
		return false
	}
	if r := classifyKeyBytes(der); r.kind != "" {
		s.add(r.kind, r.digest(der), false)
		return true
	}
	return false
}

// startsLikeKey decodes the first base64 characters of a block's body and reports
// whether they start like a key or keystore: DER whose first element is an INTEGER
// (PKCS#1, PKCS#8, SEC1, DSA, PFX) or a SEQUENCE that opens with an OID (encrypted
// PKCS#8), the OpenSSH container, or a Java keystore. A certificate, request or CRL
// opens its first SEQUENCE with a version tag or another SEQUENCE.
func startsLikeKey(body []byte) bool {
	var b64 [24]byte
	n := 0
	for i := 0; i < len(body) && n < len(b64); i++ {
		if c := body[i]; b64Class[c] && c != '-' && c != '_' {
			b64[n] = c
			n++
		} else if c == '\\' && i+1 < len(body) && (body[i+1] == 'n' || body[i+1] == 'r') {
			i++
		}
	}
	var head [18]byte
	m, _ := base64.StdEncoding.Decode(head[:], b64[:n/4*4])
	b := head[:m]
	switch {
	case bytes.HasPrefix(b, []byte("openssh-key-v1")), len(b) >= 4 && (b[0] == 0xfe && b[1] == 0xed || b[0] == 0xce && b[1] == 0xce):
		return true
	case len(b) < 4 || b[0] != tagSequence:
		return false
	}
	at := func(p int) (tag byte, next int, ok bool) {
		if p+1 >= len(b) {
			return 0, 0, false
		}
		l := int(b[p+1])
		if l&0x80 == 0 {
			return b[p], p + 2, true
		}
		return b[p], p + 2 + l&0x7f, true
	}
	_, p, ok := at(0)
	if !ok {
		return false
	}
	t1, q, ok := at(p)
	switch {
	case !ok:
		return false
	case t1 == tagInteger:
		return true
	case t1 != tagSequence:
		return false
	}
	t2, _, ok := at(q)
	return ok && t2 == tagOID
}

// examinePrivatePEM handles every "... PRIVATE KEY" block.
func (s *keyScanner) examinePrivatePEM(label, body []byte) {
	if indexFold(body, "proc-type:", 0) >= 0 {
		s.examineLegacyEncrypted(label, body)
		return
	}
	if bytes.IndexByte(body, ':') >= 0 {
		// Headers a block of this label should not have: try the payload after them.
		body = afterHeaders(body)
	}
	der, ok := cleanBase64(body)
	if !ok {
		return
	}
	r := classifyKeyBytes(der)
	switch {
	case r.kind != "":
		s.add(r.kind, r.digest(der), false)
	case r.public:
		s.add(KindMalformedPublic, sha256.Sum256(der), true)
	}
}

// afterHeaders drops RFC 1421-style header lines ("Name: value") before a payload.
func afterHeaders(body []byte) []byte {
	lines := splitLines(body)
	last := -1
	for i, l := range lines {
		if bytes.IndexByte(l, ':') >= 0 {
			last = i
		}
	}
	if last < 0 || last == len(lines)-1 {
		return body
	}
	var out []byte
	for _, l := range lines[last+1:] {
		out = append(out, l...)
		out = append(out, '\n')
	}
	return out
}

// splitLines splits on real newlines and on escaped ones (\n, \\n, \r).
func splitLines(b []byte) [][]byte {
	var lines [][]byte
	start := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\n' || c == '\r' {
			lines = append(lines, b[start:i])
			start = i + 1
			continue
		}
		if c == '\\' {
			j := i
			for j < len(b) && b[j] == '\\' {
				j++
			}
			if j < len(b) && (b[j] == 'n' || b[j] == 'r') {
				lines = append(lines, b[start:i])
				i = j
				start = j + 1
			}
		}
	}
	return append(lines, b[start:])
}

// cleanBase64 decodes a block body: base64 in either alphabet, with any line breaks,
// escaped line breaks, spaces or padding. Anything else means the body is not a key.
func cleanBase64(body []byte) ([]byte, bool) {
	// Check the whole body before allocating: a body is often cut short by a byte that
	// no base64 holds, and callers may hand in long text.
	if base64Extent(body) < len(body) {
		return nil, false
	}
	buf := make([]byte, 0, len(body))
	url, std := false, false
	for i := 0; i < len(body); i++ {
		// Copy a run of letters and digits at once: lines of a body are mostly that.
		j := i
		for j < len(body) && b64Alnum[body[j]] {
			j++
		}
		buf = append(buf, body[i:j]...)
		if i = j; i == len(body) {
			break
		}
		c := body[i]
		switch {
		case c == '-' || c == '_':
			url = true
			buf = append(buf, c)
		case c == '+' || c == '/':
			std = true
			buf = append(buf, c)
		case c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t':
		case c == '\\':
			for i+1 < len(body) && body[i+1] == '\\' {
				i++
			}
			if i+1 < len(body) && (body[i+1] == 'n' || body[i+1] == 'r' || body[i+1] == 't') {
				i++
			}
		default:
			return nil, false
		}
	}
	if url && std || len(buf) < 16 {
		return nil, false
	}
	return decodeBase64Loose(buf, url)
}

// base64Extent returns the length of the prefix of b made of the bytes a block body may
// hold: base64 in either alphabet, padding, layout and escaped line breaks.
func base64Extent(b []byte) int {
	for i, c := range b {
		if !b64Body[c] {
			return i
		}
	}
	return len(b)
}

var b64Body = func() (t [256]bool) {
	t = b64Class
	for _, c := range "= \n\r\t\\" {
		t[c] = true
	}
	return t
}()

// b64Alnum marks the letters and digits, which both base64 alphabets share.
var b64Alnum = func() (t [256]bool) {
	for c := range 256 {
		t[c] = b64Class[c] && c != '+' && c != '/' && c != '-' && c != '_'
	}
	return t
}()

// decodeBase64Loose decodes unpadded base64 (padding already removed).
func decodeBase64Loose(buf []byte, url bool) ([]byte, bool) {
	if len(buf)%4 == 1 {
		return nil, false
	}
	enc := base64.RawStdEncoding
	if url {
		enc = base64.RawURLEncoding
	}
	out := make([]byte, enc.DecodedLen(len(buf)))
	n, err := enc.Decode(out, buf)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}

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

// examineOpenVPN handles an OpenVPN static key: 2048 bits in hex.
func (s *keyScanner) examineOpenVPN(body []byte) {
	key := make([]byte, 0, 256)
	var hi byte
	half := false
	for _, line := range splitLines(body) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		for _, c := range line {
			if c == ' ' || c == '\t' {
				continue
			}
			v, ok := hexVal(c)
			if !ok {
				return
			}
			if half {
				key = append(key, hi<<4|v)
			} else {
				hi = v
			}
			half = !half
		}
	}
	if half || len(key) != 256 {
		return
	}
	s.add(KindOpenVPNStatic, sha256.Sum256(key), false)
}

// examinePGP handles an armored PGP private key: headers, a blank line, base64 and a
// "=XXXX" checksum line.
func (s *keyScanner) examinePGP(body []byte) {
	lines := splitLines(body)
	var payload [][]byte
	// Line-structured armor: everything after the last header line.
	last, nonBlank := -1, 0
	for i, l := range lines {
		if bytes.IndexByte(l, ':') >= 0 {
			last = i
		}
		if len(bytes.TrimSpace(l)) > 0 {
			nonBlank++
		}
	}
	// The marker lines may stand alone around one line of headers and payload.
	if nonBlank > 1 {
		payload = lines[last+1:]
	} else {
		// One line (folded or without separators): the payload is the run of
		// space-separated tokens after the headers.
		line := bytes.Join(lines, []byte(" "))
		if last >= 0 {
			if c := bytes.LastIndexByte(line, ':'); c >= 0 {
				line = line[c+1:]
			}
		}
		payload = bytes.Fields(line)
	}
	var b64 []byte
	for _, l := range payload {
		l = bytes.TrimSpace(l)
		if len(l) == 5 && l[0] == '=' {
			continue // checksum
		}
		b64 = append(b64, l...)
	}
	// Checksum glued to the payload.
	if n := len(b64); n > 5 && b64[n-5] == '=' && b64[n-4] != '=' {
		b64 = b64[:n-5]
	}
	b64 = bytes.TrimRight(b64, "=")
	// Header values in a one-line armor: try the payload from each token boundary.
	for try := 0; try < 8 && len(b64) >= 16; try++ {
		if !s.spend(len(b64)) {
			return
		}
		if data, ok := cleanBase64(b64); ok {
			switch pgpPacket(data) {
			case pgpSecret:
				s.add(KindPGP, sha256.Sum256(data), false)
				return
			case pgpPublic:
				s.add(KindMalformedPublic, sha256.Sum256(data), true)
				return
			}
		}
		k := bytes.IndexFunc(b64[1:], func(r rune) bool { return r == 'l' || r == 'n' || r == 'x' })
		if k < 0 {
			return
		}
		b64 = b64[k+1:]
	}
}

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

// scanAge handles age identities: "AGE-SECRET-KEY-1" and a Bech32 payload with a valid
// checksum (a placeholder fails it).
func (s *keyScanner) scanAge(text []byte) {
	for _, trig := range [][]byte{trigAgeUpper, trigAgeLower} {
		for from := 0; ; {
			k := bytes.Index(text[from:], trig)
			if k < 0 {
				break
			}
			k += from
			e := k
			for e < len(text) && (b64Class[text[e]] && text[e] != '+' && text[e] != '/' && text[e] != '_') {
				e++
			}
			from = e
			if !s.spend(workPerCandidate + 4*(e-k)) {
				return
			}
			if data, ok := bech32Decode(text[k:e]); ok && len(data) >= 16 {
				s.add(KindAge, sha256.Sum256(data), false)
			}
		}
	}
}

const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// bech32Values maps each byte to its value in bech32Charset, or -1.
var bech32Values = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(bech32Charset); i++ {
		t[bech32Charset[i]] = int8(i)
	}
	return t
}()

// bech32Decode verifies a Bech32 or Bech32m string and returns its payload in bytes.
func bech32Decode(tok []byte) ([]byte, bool) {
	sep := bytes.LastIndexByte(tok, '1')
	if sep < 1 || len(tok)-sep-1 < 7 {
		return nil, false
	}
	// One case throughout; read in lower case.
	hasUpper, hasLower := false, false
	for _, c := range tok {
		hasUpper = hasUpper || c >= 'A' && c <= 'Z'
		hasLower = hasLower || c >= 'a' && c <= 'z'
	}
	if hasUpper && hasLower {
		return nil, false
	}
	lower := func(c byte) byte {
		if c >= 'A' && c <= 'Z' {
			return c + 32
		}
		return c
	}
	hrp, data := tok[:sep], tok[sep+1:]
	vals := make([]byte, len(data))
	for i, c := range data {
		v := bech32Values[lower(c)]
		if v < 0 {
			return nil, false
		}
		vals[i] = byte(v)
	}
	chk := uint32(1)
	poly := func(v byte) {
		b := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		chk ^= 0x3b6a57b2 & -(b & 1)
		chk ^= 0x26508e6d & -(b >> 1 & 1)
		chk ^= 0x1ea119fa & -(b >> 2 & 1)
		chk ^= 0x3d4233dd & -(b >> 3 & 1)
		chk ^= 0x2a1462b3 & -(b >> 4 & 1)
	}
	for _, c := range hrp {
		poly(lower(c) >> 5)
	}
	poly(0)
	for _, c := range hrp {
		poly(lower(c) & 31)
	}
	for _, v := range vals {
		poly(v)
	}
	if chk != 1 && chk != 0x2bc830a3 {
		return nil, false
	}
	var out []byte
	acc, bits := uint32(0), 0
	for _, v := range vals[:len(vals)-6] {
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	return out, true
}

// percentDecode decodes %XX escapes, keeping '+' (it is a base64 character).
func percentDecode(b []byte) ([]byte, bool) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) {
			h, ok1 := hexVal(b[i+1])
			l, ok2 := hexVal(b[i+2])
			if ok1 && ok2 {
				out = append(out, h<<4|l)
				i += 2
				continue
			}
		}
		out = append(out, b[i])
	}
	return out, len(out) < len(b)
}
