package policy

import (
	"bytes"
	"crypto/sha256"
)

// Stage 4, recognize: age identities ("AGE-SECRET-KEY-1" and a Bech32 payload).

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
