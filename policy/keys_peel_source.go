package policy

import (
	"bytes"
	"iter"
)

// Stage 3, peel: source text. A PEM key written as string literals in code (Python,
// JavaScript, Java, Go concatenation), as one shell echo or printf argument per line, as
// XML with character references for its line breaks, or with every line behind a comment
// or quote prefix ("# ", "> ", "// "). Each line gives the text of its first string
// literal, or the line without its prefix; the lines joined are scanned again, once.

// mayNeedPeeling reports a BEGIN marker with something other than layout before it on
// its line (a quote, a prefix, code), or XML line-break references: what a PEM block
// that stands on its own lines never has.
func mayNeedPeeling(text []byte) bool {
	if bytes.Contains(text, []byte("&#")) {
		return true
	}
	// Each byte is looked at once: the walk back from a marker stops at the previous
	// one, which, on the same line, is itself something before the marker.
	for lo := 0; ; {
		k := indexFold(text, "-----begin", lo)
		if k < 0 {
			return false
		}
		p := k - 1
		for ; p >= lo; p-- {
			c := text[p]
			if c == '\n' || p > 0 && text[p-1] == '\\' && (c == 'n' || c == 'r') {
				break
			}
			if c != ' ' && c != '\t' && c != '\r' {
				return true
			}
		}
		if p < lo && lo > 0 {
			return true
		}
		lo = k + 1
	}
}

// peelSourceLines returns the text a program would have assembled from text, and
// whether it differs from text.
//
// Text as a JSON string holds it, with its line breaks still escaped ("\n" and no real
// line break), is split at the escapes.
func peelSourceLines(text []byte) ([]byte, bool) {
	out := make([]byte, 0, len(text))
	changed := false
	for line := range textLines(text) {
		// XML and HTML write the line breaks of an element's text as references.
		for _, ref := range [...]string{"&#10;", "&#13;", "&#xA;", "&#xa;", "&#xD;", "&#xd;"} {
			if bytes.Contains(line, []byte(ref)) {
				rest := bytes.ReplaceAll(line, []byte(ref), []byte{'\n'})
				peeled, _ := peelSourceLines(rest)
				out = append(out, peeled...)
				out = append(out, '\n')
				line, changed = nil, true
				break
			}
		}
		if line == nil {
			continue
		}
		p := peelLine(line)
		changed = changed || len(p) != len(line)
		out = append(out, p...)
		out = append(out, '\n')
	}
	return out, changed
}

// textLines yields the lines of text: split at real line breaks, or, in text as a JSON
// string holds it (no real line break), at the escaped ones.
func textLines(text []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		escaped := bytes.IndexByte(text, '\n') < 0
		for len(text) > 0 {
			line := text
			if k, n := nextLineBreak(text, escaped); k >= 0 {
				line, text = text[:k], text[k+n:]
			} else {
				text = nil
			}
			if !yield(line) {
				return
			}
		}
	}
}

// nextLineBreak returns the index and length of the first line break of text: a real
// one, or with escaped set an escaped "\n" (after an even number of backslashes, so
// that "\\n", a backslash and an n, is not one).
func nextLineBreak(text []byte, escaped bool) (int, int) {
	if !escaped {
		return bytes.IndexByte(text, '\n'), 1
	}
	for i := 0; ; {
		k := bytes.IndexByte(text[i:], '\\')
		if k < 0 || i+k+1 >= len(text) {
			return -1, 0
		}
		p := i + k
		if text[p+1] == 'n' {
			return p, 2
		}
		i = p + 2 // an escape of another character, or of a backslash
	}
}

// peelLine returns the content of a line's first string literal, without a trailing
// escaped line break; or, for a line with no literal, the line without leading
// whitespace and comment or quote prefixes.
func peelLine(line []byte) []byte {
	line = bytes.TrimRight(line, " \t\r")
	if q := bytes.IndexAny(line, "\"'`"); q >= 0 {
		rest := line[q+1:]
		if e := bytes.IndexByte(rest, line[q]); e >= 0 {
			rest = rest[:e]
		}
		for _, esc := range [...]string{`\r\n`, `\n`, `\r`} {
			if bytes.HasSuffix(rest, []byte(esc)) {
				rest = rest[:len(rest)-len(esc)]
				break
			}
		}
		return rest
	}
	for {
		t := bytes.TrimLeft(line, " \t")
		switch {
		case bytes.HasPrefix(t, []byte("//")):
			t = t[2:]
		case len(t) > 0 && bytes.IndexByte([]byte("#>;*%!|"), t[0]) >= 0:
			t = t[1:]
		}
		if len(t) == len(line) {
			return line
		}
		line = t
	}
}
