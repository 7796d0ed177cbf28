package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

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

var errNotJSON = errors.New("object is not valid JSON")

func (s *keyScanner) limit(reason string) error {
	return &KeyLimitError{Reason: reason}
}

// candidate pays for one more piece of work: a block, a header, a blob, a JSON text.
func (s *keyScanner) candidate() error {
	return s.charge(workPerCandidate)
}

// The options for JSON text inside a string value, read as leniently as the tools that
// load it (the last of two equal names wins for them). The object itself is read with
// the defaults: duplicate names and invalid UTF-8 are errors, as for the API server.
// The reader stops at 10,000 levels; the walk stops at maxJSONNesting.
var nestedJSONOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// jsonReader is a decoder and the buffer it reads, kept from one use to the next.
type jsonReader struct {
	dec jsontext.Decoder
	buf bytes.Buffer
	lay layoutReader
}

// jsonReaders read objects, without a copy; nestedReaders read JSON text inside
// strings, through a layoutReader.
var (
	jsonReaders   = sync.Pool{New: func() any { return new(jsonReader) }}
	nestedReaders = sync.Pool{New: func() any { return new(jsonReader) }}
)

func (r *jsonReader) release() {
	r.buf = bytes.Buffer{}
	r.dec.Reset(&r.buf)
	jsonReaders.Put(r)
}

func (r *jsonReader) releaseNested() {
	r.lay = layoutReader{}
	r.dec.Reset(&r.lay)
	nestedReaders.Put(r)
}

func (s *keyScanner) scanObject(raw []byte) error {
	r := jsonReaders.Get().(*jsonReader)
	defer r.release()
	r.buf = *bytes.NewBuffer(raw)
	r.dec.Reset(&r.buf)
	w := jsonWalker{s: s, dec: &r.dec}
	_, _, err := w.value(0)
	if err == nil {
		// One value and nothing after it.
		if _, err = r.dec.ReadToken(); err == io.EOF {
			return w.charged()
		} else if err == nil {
			return fmt.Errorf("%w: more than one value at byte %d", errNotJSON, r.dec.InputOffset())
		}
	}
	return jsonError(err)
}

// jsonError turns an error of the JSON reader into one that says what was wrong and
// where, by byte offset. A *jsontext.SyntacticError can quote the input (member names in
// its pointer, the character it stopped at): none of it is kept.
func jsonError(err error) error {
	var limit *KeyLimitError
	if errors.As(err, &limit) {
		return limit
	}
	reason := "unexpected character"
	var off int64
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		off = se.ByteOffset
		if se.Err != nil {
			switch msg := se.Err.Error(); msg {
			case "invalid UTF-8", "duplicate object member name", "object member name must be a string":
				reason = msg
			case "exceeded max depth":
				reason = fmt.Sprintf("nested deeper than %d levels", maxJSONNesting)
			case io.ErrUnexpectedEOF.Error():
				reason = "unexpected end of input"
			}
		}
	} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		reason = "unexpected end of input"
	}
	return fmt.Errorf("%w: %s at byte %d", errNotJSON, reason, off)
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

// jsonWalker reads one JSON text token by token, tracks the path and hands string
// values to the key detector only when a cheap filter says so.
type jsonWalker struct {
	s   *keyScanner
	dec *jsontext.Decoder
	// depth is the decode depth of the text being walked (0 for the object itself).
	depth int
	// stream is set when the decoder reads through a copy: values it returns are only
	// valid until the next read.
	stream bool
	// paid is how much of the input has been charged.
	paid int64
	// objValue is the raw "value" string member of the object just walked (an env
	// var's), or nil: a slice of the object, or a copy when the walk streams.
	objValue []byte
}

// charged pays for the input read since the last call.
func (w *jsonWalker) charged() error {
	off := w.dec.InputOffset()
	n := int(off - w.paid)
	w.paid = off
	return w.s.charge(n)
}

// value walks the next value. It returns its kind and, for a string, its raw JSON.
func (w *jsonWalker) value(nesting int) (jsontext.Kind, jsontext.Value, error) {
	switch k := w.dec.PeekKind(); k {
	case '{':
		return k, nil, w.object(nesting + 1)
	case '[':
		return k, nil, w.array(nesting + 1)
	case '"':
		v, err := w.dec.ReadValue()
		if err != nil {
			return 0, nil, err
		}
		if err := w.charged(); err != nil {
			return 0, nil, err
		}
		return k, v, w.str(v)
	default:
		// A number, a literal, or an error that ReadValue reports.
		v, err := w.dec.ReadValue()
		if err != nil {
			return 0, nil, err
		}
		return k, v, w.charged()
	}
}

// str examines a string value, given as raw JSON.
func (w *jsonWalker) str(v jsontext.Value) error {
	body := v[1 : len(v)-1]
	if len(body) < minKeyValueLen {
		return nil
	}
	var text []byte
	switch esc := escapesOf(body); {
	case mayHoldKeyShort(body):
		// Every pass reads "\n" and "\r" as line breaks, so a value with no other
		// escapes is scanned as it is.
		text = body
		if esc == otherEscapes {
			text = unquote(v)
		}
	case esc == otherEscapes && hasUnicodeEscape(body):
		// \uXXXX escapes can spell a trigger ("\u002d" for a dash) that the raw
		// bytes do not show.
		// A value that is itself JSON may escape its own strings the same way, one level
		// down: the walk of that JSON decodes them.
		if text = unquote(v); !mayHoldKey(text) && !(startsJSONText(text) && hasUnicodeEscape(text)) {
			text = nil
		}
	}
	if text == nil {
		return nil
	}
	return w.s.scanText(text, w.depth)
}

// startsJSONText reports text that opens a JSON object or array.
func startsJSONText(text []byte) bool {
	t := bytes.TrimLeft(text, " \t\r\n")
	return len(t) > 1 && (t[0] == '{' || t[0] == '[')
}

// unquote decodes a JSON string the reader has validated. Inside a string value, JSON
// text may hold invalid UTF-8, which is kept as it is.
func unquote(v []byte) []byte {
	out, err := jsontext.AppendUnquote(nil, v)
	if err != nil {
		if u, err := unescapeJSON(v[1 : len(v)-1]); err == nil {
			return u
		}
	}
	return out
}

// stringEscapes says which escapes a JSON string holds.
type stringEscapes uint8

const (
	noEscapes        stringEscapes = iota
	lineBreakEscapes               // only \n and \r
	otherEscapes
)

func escapesOf(body []byte) stringEscapes {
	esc := noEscapes
	for i := 0; ; {
		k := bytes.IndexByte(body[i:], '\\')
		if k < 0 || i+k+1 >= len(body) {
			return esc
		}
		i += k
		if c := body[i+1]; c != 'n' && c != 'r' {
			return otherEscapes
		}
		esc = lineBreakEscapes
		i += 2
	}
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

// members the object-level checks look at, unescaped.
type objectFacts struct {
	typ, kty   []byte
	crv        []byte
	d, k       []byte
	hasD, hasK bool
	pkStart    int
	pkEnd      int
	name       []byte
}

// memberName reads the name of the next member, unescaped.
func (w *jsonWalker) memberName() ([]byte, error) {
	v, err := w.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	if err := w.charged(); err != nil {
		return nil, err
	}
	if bytes.IndexByte(v, '\\') >= 0 {
		return unquote(v), nil
	}
	key := v[1 : len(v)-1 : len(v)-1]
	if w.stream {
		key = bytes.Clone(key)
	}
	return key, nil
}

// smallString is the unescaped value of a short string member, a copy if the reader's
// buffer may change under it.
func (w *jsonWalker) smallString(v jsontext.Value) []byte {
	if bytes.IndexByte(v, '\\') >= 0 {
		return unquote(v)
	}
	if w.stream {
		return bytes.Clone(v[1 : len(v)-1])
	}
	return v[1 : len(v)-1]
}

func (w *jsonWalker) object(nesting int) error {
	if nesting > maxJSONNesting {
		return w.s.limit(fmt.Sprintf("JSON nested deeper than %d levels", maxJSONNesting))
	}
	if _, err := w.dec.ReadToken(); err != nil {
		return err
	}
	s := w.s
	start := len(s.findings)
	var facts objectFacts
	facts.pkStart, facts.pkEnd = -1, -1
	var split splitBlock
	var envValue []byte
	for {
		switch w.dec.PeekKind() {
		case '}':
			if _, err := w.dec.ReadToken(); err != nil {
				return err
			}
			if split.open {
				if err := w.splitFlush(&split); err != nil {
					return err
				}
			}
			w.objectEnd(&facts, start)
			w.objValue = envValue
			return w.charged()
		case 0:
			// An error, which reading reports.
			_, err := w.dec.ReadToken()
			return cmpOr(err, io.ErrUnexpectedEOF)
		}
		key, err := w.memberName()
		if err != nil {
			return err
		}
		if s.nested == 0 {
			s.path = append(s.path, pathElem{key: key})
		}
		before := len(s.findings)
		s.openPrivate = false
		kind, v, err := w.value(nesting)
		if err != nil {
			return err
		}
		if s.nested == 0 {
			s.path = s.path[:len(s.path)-1]
		}
		if kind == '"' {
			if err := w.splitElement(&split, v[1:len(v)-1], pathElem{key: key}, ""); err != nil {
				return err
			}
			if string(key) == "value" {
				if envValue = v[1 : len(v)-1]; w.stream {
					envValue = bytes.Clone(envValue)
				}
			}
		} else if split.open {
			if err := w.splitFlush(&split); err != nil {
				return err
			}
		}
		if kind != '"' || len(key) > 11 {
			continue
		}
		switch string(key) {
		case "type", "kty", "crv", "name":
			if len(v) <= 66 {
				switch u := w.smallString(v); string(key) {
				case "type":
					facts.typ = u
				case "kty":
					facts.kty = u
				case "crv":
					facts.crv = u
				case "name":
					facts.name = u
				}
			}
		case "d", "k":
			if u := unquote(v); key[0] == 'd' {
				facts.d, facts.hasD = u, true
			} else {
				facts.k, facts.hasK = u, true
			}
		case "private_key":
			facts.pkStart, facts.pkEnd = before, len(s.findings)
		}
	}
}

func cmpOr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// objectEnd applies what the members of an object say together: a Google
// service-account key, a JWK, the name of a container or env var.
func (w *jsonWalker) objectEnd(facts *objectFacts, start int) {
	s := w.s
	if string(facts.typ) == "service_account" && facts.pkStart >= 0 {
		for j := facts.pkStart; j < facts.pkEnd; j++ {
			if !s.findings[j].Malformed {
				s.findings[j].Kind = KindGoogleSA
			}
		}
	}
	if len(facts.kty) > 0 {
		w.jwk(facts)
	}
	if s.nested == 0 && len(s.path) >= 2 && len(facts.name) > 0 && len(s.findings) > start {
		// An element of containers/env: give its findings the container or env name.
		parent := string(s.path[len(s.path)-2].key)
		last := s.path[len(s.path)-1]
		isContainer := parent == "containers" || parent == "initContainers" || parent == "ephemeralContainers"
		if last.key != nil || !isContainer && parent != "env" || !s.spend(len(s.findings)-start) {
			return
		}
		name := safeName(string(facts.name))
		for j := start; j < len(s.findings); j++ {
			f := &s.findings[j]
			switch {
			case isContainer && f.Container == "":
				f.Container = name
			case !isContainer && f.Env == "":
				f.Env = name
			}
		}
	}
}

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

func (w *jsonWalker) array(nesting int) error {
	if nesting > maxJSONNesting {
		return w.s.limit(fmt.Sprintf("JSON nested deeper than %d levels", maxJSONNesting))
	}
	if _, err := w.dec.ReadToken(); err != nil {
		return err
	}
	s := w.s
	var split splitBlock
	for n := 0; ; n++ {
		switch w.dec.PeekKind() {
		case ']':
			if _, err := w.dec.ReadToken(); err != nil {
				return err
			}
			if split.open {
				if err := w.splitFlush(&split); err != nil {
					return err
				}
			}
			return w.charged()
		case 0:
			_, err := w.dec.ReadToken()
			return cmpOr(err, io.ErrUnexpectedEOF)
		}
		if s.nested == 0 {
			s.path = append(s.path, pathElem{index: n})
		}
		s.openPrivate = false
		w.objValue = nil
		kind, v, err := w.value(nesting)
		if err != nil {
			return err
		}
		if s.nested == 0 {
			s.path = s.path[:len(s.path)-1]
		}
		switch {
		case kind == '"':
			err = w.splitElement(&split, v[1:len(v)-1], pathElem{index: n}, "")
		case kind == '{' && w.objValue != nil:
			err = w.splitElement(&split, w.objValue, pathElem{index: n}, "value")
		case split.open:
			err = w.splitFlush(&split)
		}
		w.objValue = nil
		if err != nil {
			return err
		}
	}
}

// splitBlock collects a private key block whose lines are spread over adjacent string
// elements of one array (args: "--key", "-----BEGIN ...", "MII...", "-----END ..."),
// over the "value" of adjacent env vars, or over adjacent string members of one object
// (ConfigMap keys line01, line02, ...). Each element is appended at most once, so the
// work stays linear in the array or object.
type splitBlock struct {
	open     bool
	at       pathElem // the element or member holding the BEGIN marker
	sub      string   // the member of that element ("value" of an env var), or ""
	findings int      // findings before that element
	buf      []byte
}

// splitElement feeds one string element (its raw JSON body) to the collection.
func (w *jsonWalker) splitElement(sp *splitBlock, body []byte, at pathElem, sub string) error {
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
	sp.open, sp.at, sp.sub, sp.findings = true, at, sub, len(w.s.findings)
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
		s.path = append(s.path, sp.at)
		if sp.sub != "" {
			s.path = append(s.path, pathElem{key: []byte(sp.sub)})
		}
	}
	before := len(s.findings)
	err := s.scanText(sp.buf, w.depth)
	if s.nested == 0 {
		s.path = s.path[:len(s.path)-1]
		if sp.sub != "" {
			s.path = s.path[:len(s.path)-1]
		}
	}
	if err != nil {
		return err
	}
	if before == len(s.findings) || sp.findings == before {
		return nil
	}
	inElements := make(map[[sha256.Size]byte]bool, before-sp.findings)
	for _, g := range s.findings[sp.findings:before] {
		inElements[g.digest] = true
	}
	kept := s.findings[:before]
	for _, f := range s.findings[before:] {
		if inElements[f.digest] {
			delete(s.seen, findingKey{field: f.Field, digest: f.digest})
			continue
		}
		kept = append(kept, f)
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
