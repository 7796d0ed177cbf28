package policy

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// Stage 3, peel: base64 in either alphabet, padded or not, wrapped over lines or not, and
// at any alignment of a longer run. What it decodes to goes to examineDecoded.

// signatures are the base64 forms, at each of the three byte alignments, of text that
// starts a key; they find a key encoded at any offset of a longer base64 run.
var signatures = func() (out []base64Signature) {
	for _, s := range []string{"-----BEGIN", "-----begin", "openssh-key-v1", "PRIVATE KEY", "service_account", "PuTTY-User-Key", "AGE-SECRET-KEY", "\"private_key\"", "---- BEGIN", "\"kty\""} {
		for pad := 0; pad < 3; pad++ {
			src := append(make([]byte, pad), s...)
			enc := base64.StdEncoding.EncodeToString(src)
			first := (pad*8 + 5) / 6 // first character made only of s
			last := (len(src)*8)/6 - 1
			if pad == 0 {
				first = 0
			}
			lead := first % 4
			if last <= first {
				continue
			}
			out = append(out, base64Signature{enc: []byte(enc[first : last+1]), lead: lead})
		}
	}
	return out
}()

type base64Signature struct {
	enc  []byte
	lead int // characters of the 4-character group before enc
}

// scanBase64 decodes the base64 runs of text (outside the PEM blocks that scanPEM
// recognised) and examines what they decode to.
func (s *keyScanner) scanBase64(text []byte, masked [][2]int, depth int) error {
	mi := 0
	for i := 0; i < len(text); {
		for mi < len(masked) && masked[mi][1] <= i {
			mi++
		}
		if mi < len(masked) && i >= masked[mi][0] {
			i = masked[mi][1]
			continue
		}
		if !b64Class[text[i]] {
			i++
			continue
		}
		stop := len(text)
		if mi < len(masked) {
			stop = masked[mi][0]
		}
		blob, next := collectBlob(text[:stop], i)
		if len(blob) >= minBase64Run && isHex(blob) {
			if hexMayHoldKey(blob) {
				if err := s.examineHex(blob, depth); err != nil {
					return err
				}
			}
		} else if len(blob) >= minBase64Run {
			found := len(s.findings)
			if afterEscapedBreak(text, i) {
				// The letter of an escaped line break ("\n") glued to the run.
				if err := s.examineBlob(text[:i+1], blob[1:], depth); err != nil {
					return err
				}
			}
			if len(s.findings) == found {
				if err := s.examineBlob(text[:i], blob, depth); err != nil {
					return err
				}
			}
		}
		i = next
	}
	return nil
}

// afterEscapedBreak reports whether text[i] is the letter of an escaped line break.
func afterEscapedBreak(text []byte, i int) bool {
	return i > 0 && text[i-1] == '\\' && (text[i] == 'n' || text[i] == 'r')
}

// collectBlob gathers the base64 characters from i: one run, or several runs separated
// by line breaks (real or escaped) or spaces when they look like wrapped lines. Runs that
// are joined are copied once, into a buffer of the size they need.
func collectBlob(text []byte, i int) ([]byte, int) {
	n, runs, next := blobRuns(text, i, nil)
	if runs == 1 {
		return text[i : i+n], next
	}
	blob := make([]byte, 0, n)
	blobRuns(text, i, func(run []byte) { blob = append(blob, run...) })
	return blob, next
}

// blobRuns walks the runs that make one blob from i, handing each to add if it is not
// nil. It returns how many base64 characters they hold, how many runs there are and
// where the blob ends.
func blobRuns(text []byte, i int, add func(run []byte)) (n, runs, next int) {
	for {
		j := i
		for j < len(text) && b64Class[text[j]] {
			j++
		}
		run := text[i:j]
		for j < len(text) && text[j] == '=' {
			j++
		}
		n, runs = n+len(run), runs+1
		if add != nil {
			add(run)
		}
		if j > i+len(run) || len(run) < minWrapLine {
			return n, runs, j // padded, or too short to be a wrapped line
		}
		// Skip one separator: whitespace, or an escaped line break.
		k := j
		for k < len(text) {
			c := text[k]
			if c == ' ' || c == '\n' || c == '\r' || c == '\t' {
				k++
				continue
			}
			if c == '\\' {
				m := k
				for m < len(text) && text[m] == '\\' {
					m++
				}
				if m < len(text) && (text[m] == 'n' || text[m] == 'r') {
					k = m + 1
					continue
				}
			}
			break
		}
		if k == j || k >= len(text) || !b64Class[text[k]] {
			return n, runs, j
		}
		i = k
	}
}

func (s *keyScanner) examineBlob(before, blob []byte, depth int) error {
	// A decode, a classification and a pass for the signatures.
	if err := s.charge(workPerCandidate + 3*len(blob)); err != nil {
		return err
	}
	if i := bytes.IndexAny(blob, "-_"); i >= minBase64Run {
		// Base64 directly followed by a dash-word ("-----END ...", "-prod"): the run
		// before the dash is tried on its own first.
		found := len(s.findings)
		if err := s.examineBase64At(blob[:i], false, depth); err != nil || len(s.findings) > found {
			return err
		}
	}
	url := bytes.ContainsAny(blob, "-_")
	if url && bytes.ContainsAny(blob, "+/") {
		// A run that starts or ends with dashes from surrounding text.
		blob = bytes.Trim(blob, "-_")
		url = bytes.ContainsAny(blob, "-_")
		if url && bytes.ContainsAny(blob, "+/") {
			return nil
		}
	}
	start := len(s.findings)
	defer func() {
		if kubeconfigKeyData(before) {
			for i := start; i < len(s.findings); i++ {
				if f := &s.findings[i]; !f.Malformed && !strings.HasPrefix(f.Kind, kindPrefixKubeconfig) {
					f.Kind = kindPrefixKubeconfig + f.Kind
				}
			}
		}
	}()
	if err := s.examineBase64At(blob, url, depth); err != nil {
		return err
	}
	if len(s.findings) > start || url {
		return nil
	}
	// The key may start at another alignment than the run (base64 of longer text, or
	// characters glued in front).
	// One pass over the run finds every place a signature starts; each alignment is
	// examined once.
	tried, left := [4]bool{true}, 3
	var v uint32 // the values of the three characters from p, six bits each
	for q := 0; q < len(blob) && left > 0; q++ {
		v = (v<<6 | b64StdValue[blob[q]]) & (1<<18 - 1)
		p := q - 2
		if p < 0 || signatureStart[v/64]&(1<<(v%64)) == 0 {
			continue
		}
		for _, i := range signaturesByStart[v] {
			sig := signatures[i]
			if p < sig.lead || tried[(p-sig.lead)%4] || !bytes.HasPrefix(blob[p:], sig.enc) {
				continue
			}
			a := (p - sig.lead) % 4
			tried[a], left = true, left-1
			if err := s.charge(len(blob)); err != nil {
				return err
			}
			if err := s.examineBase64At(blob[a:], false, depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// signatureStart marks the first three characters of every signature, by their
// values in the standard base64 alphabet; signaturesByStart lists the signatures that
// start with each.
var (
	signatureStart    [1 << 18 / 64]uint64
	signaturesByStart = map[uint32][]int{}
)

func init() {
	for k, sig := range signatures {
		i := b64Triple(sig.enc[0], sig.enc[1], sig.enc[2])
		signatureStart[i/64] |= 1 << (i % 64)
		signaturesByStart[i] = append(signaturesByStart[i], k)
	}
}

// b64StdValue is the value of each character of the standard base64 alphabet; the
// others read as 0, which only costs a comparison with a signature.
var b64StdValue = func() (t [256]uint32) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = uint32(i)
	}
	return t
}()

func b64Triple(a, b, c byte) uint32 {
	return b64StdValue[a]<<12 | b64StdValue[b]<<6 | b64StdValue[c]
}

func (s *keyScanner) examineBase64At(b64 []byte, url bool, depth int) error {
	if len(b64)%4 == 1 {
		b64 = b64[:len(b64)-1]
	}
	data, ok := decodeBase64Loose(b64, url)
	if !ok {
		return nil
	}
	return s.examineDecoded(data, depth, false)
}

func kubeconfigKeyData(before []byte) bool {
	if len(before) > 24 {
		before = before[len(before)-24:]
	}
	return bytes.Contains(before, []byte("client-key-data"))
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
