package policy

import (
	"bytes"
	"fmt"
	"math/bits"
)

// Stage 2, dispatch: scanText takes one decoded text value, finds its triggers and runs
// the peel or recognizer each calls for. Peeled text comes back here one decode level
// deeper; the budget and privateKeys.maxDecodeDepth bound the recursion.

// scanText looks for keys in one decoded text value at the given decode depth.
func (s *keyScanner) scanText(text []byte, depth int) error {
	if depth > s.maxDepth {
		if mayHoldKey(text) {
			return s.limit(fmt.Sprintf("encodings nested deeper than %d levels (privateKeys.maxDecodeDepth)", s.maxDepth))
		}
		return nil
	}
	// Reading the triggers is one pass over the text.
	if err := s.charge(workPerCandidate + len(text)); err != nil {
		return err
	}
	start := len(s.findings)

	if t := bytes.TrimSpace(text); len(t) > 1 && (t[0] == '{' || t[0] == '[') {
		if ok, err := s.scanJSONText(t, depth); err != nil || ok {
			return err
		}
	}
	// Each pass runs only when its trigger occurs in the text, and is paid for first.
	trig := findTriggers(text, false)
	if err := s.charge(bits.OnesCount8(uint8(trig)) * len(text)); err != nil {
		return err
	}
	if trig&trigJWK != 0 {
		// A JWK inside other text: walk each JSON object that starts in it.
		mark := len(s.findings)
		if err := s.scanEmbeddedJSON(text, depth); err != nil {
			return err
		}
		// Or a JWK written as YAML.
		if len(s.findings) == mark && depth < s.maxDepth && bytes.Contains(text, []byte("kty:")) {
			if err := s.scanJWKYAML(text, depth); err != nil {
				return err
			}
		}
	}
	var maskBuf [8][2]int
	masked := maskBuf[:0]
	if trig&trigPEM != 0 {
		var err error
		before := len(s.findings)
		if masked, err = s.scanPEM(text, masked); err != nil {
			return err
		}
		// No key as the text stands, but a marker: it may be a key written as source
		// code or behind prefixes. The text those lines make is scanned once more.
		if len(s.findings) == before && depth < s.maxDepth && mayNeedPeeling(text) {
			if err := s.charge(2 * len(text)); err != nil {
				return err
			}
			if peeled, changed := peelSourceLines(text); changed {
				if err := s.scanText(peeled, depth+1); err != nil {
					return err
				}
			}
		}
	}
	if trig&trigPuTTY != 0 {
		if err := s.scanPuTTY(text); err != nil {
			return err
		}
	}
	if trig&trigAge != 0 {
		s.scanAge(text)
	}
	if trig&trigWireGuard != 0 {
		if err := s.scanWireGuard(text); err != nil {
			return err
		}
	}
	if trig&trigBase64 != 0 {
		if err := s.scanBase64(text, masked, depth); err != nil {
			return err
		}
	}
	if trig&trigPercent != 0 {
		if dec, ok := percentDecode(text); ok {
			if err := s.scanText(dec, depth+1); err != nil {
				return err
			}
		}
	}
	if len(s.findings) > start {
		s.serviceAccountText(text, start)
	}
	return nil
}
