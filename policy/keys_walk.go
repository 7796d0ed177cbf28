package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// Stage 1, walk: the object's JSON is read token by token with jsontext, the path is
// tracked, and each string value the cheap filter lets through goes to scanText. The
// members of an object that only mean something together (a JWK's kty and d, a
// service-account key's type, a container's name) are gathered here. JSON text inside a
// string is walked by the same walker (keys_peel_json.go).

var errNotJSON = errors.New("object is not valid JSON")

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
		s.serviceAccountKey(facts.pkStart, facts.pkEnd)
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
