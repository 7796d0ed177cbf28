package policy

import (
	"bytes"
	"crypto/sha256"
)

// Stage 1, walk: a private key block whose lines are spread over the string elements
// of one array, the values of adjacent env vars or the members of one object is joined
// and scanned as one value.

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
