package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
)

// Stage 4, recognize: PEM-style blocks. Markers and labels are read here, and each block
// goes to the recognizer its label names: "... PRIVATE KEY" (PKCS#1, PKCS#8, SEC1, DSA,
// through keys_der.go), legacy-encrypted PEM (keys_pem_legacy.go), PGP (keys_pgp.go),
// OpenVPN (keys_openvpn.go), SSH2 (keys_ssh2.go). A key's body under another label is
// found too.

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
