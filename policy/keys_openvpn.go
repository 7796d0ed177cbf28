package policy

import (
	"bytes"
	"crypto/sha256"
)

// Stage 4, recognize: OpenVPN static keys ("-----BEGIN OpenVPN Static key V1-----").

// examineOpenVPN handles an OpenVPN static key: 2048 bits in hex.
func (s *keyScanner) examineOpenVPN(body []byte) {
	key := make([]byte, 0, 256)
	var hi byte
	half := false
	for _, line := range splitLines(body) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		for _, c := range line {
			if c == ' ' || c == '\t' {
				continue
			}
			v, ok := hexVal(c)
			if !ok {
				return
			}
			if half {
				key = append(key, hi<<4|v)
			} else {
				hi = v
			}
			half = !half
		}
	}
	if half || len(key) != 256 {
		return
	}
	s.add(KindOpenVPNStatic, sha256.Sum256(key), false)
}
