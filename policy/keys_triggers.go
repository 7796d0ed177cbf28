package policy

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// Stage 2, dispatch: the cheap filter in front of every pass. A trigger says which kind
// of key text a value could hold, and so which passes over it are worth running.

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
