package policy

import (
	"bytes"
	"encoding/hex"
)

// Stage 3, peel: hex. `xxd -p`, `od`-free dumps and code that stores a key as a hex
// string. Plain hex is everywhere (digests, IDs), so a hex run is decoded only when it
// starts like DER ("30") or holds dashes ("2d2d2d2d2d", the start of a PEM marker).

// hexMayHoldKey reports a run of hex digits worth decoding.
func hexMayHoldKey(run []byte) bool {
	if len(run) < minBase64Run || bytes.IndexByte(run, '-') >= 0 {
		return false
	}
	return run[0] == '3' && run[1] == '0' || indexFold(run, "2d2d2d2d2d", 0) >= 0
}

// examineHex decodes a hex blob and examines what it holds: a key's bytes, a keystore,
// gzip, or text with keys in it.
func (s *keyScanner) examineHex(blob []byte, depth int) error {
	if err := s.charge(workPerCandidate + 2*len(blob)); err != nil {
		return err
	}
	if len(blob)%2 == 1 {
		blob = blob[:len(blob)-1]
	}
	data := make([]byte, len(blob)/2)
	if _, err := hex.Decode(data, blob); err != nil {
		return nil
	}
	return s.examineDecoded(data, depth, false)
}
