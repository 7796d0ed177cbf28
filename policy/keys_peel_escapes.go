package policy

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Stage 3, peel: JSON string escapes (\n, \uXXXX, ...) and percent escapes.

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
