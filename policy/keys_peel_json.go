package policy

import (
	"bytes"
	"errors"
	"io"
	"slices"
)

// Stage 3, peel: JSON text inside a string value (a service-account key file, a JWK, a
// kubeconfig in JSON), whole or embedded in other text, walked by jsonWalker one decode
// level deeper; findings keep the field of the string that held it.

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
