package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
)

// Stage 4, recognize: WireGuard, a configuration's "PrivateKey = <base64 of 32 bytes>"
// line (wg and wg-quick read the key's name in any case).

const KindWireGuard = "WireGuard private key"

// mayHoldWireGuard is the trigger: an '=' and the word "privatekey" in any case.
func mayHoldWireGuard(b []byte) bool {
	return bytes.IndexByte(b, '=') >= 0 && indexWireGuardName(b, 0) >= 0
}

// indexWireGuardName returns the index just past the first "privatekey" (any case) at or
// after from, or -1. The search keys on the rarer 'v'.
func indexWireGuardName(b []byte, from int) int {
	for i := from; ; {
		k := indexFold(b, "vatekey", i)
		if k < 0 {
			return -1
		}
		if k >= 3 && equalFold(b[k-3:k], "pri") {
			return k + len("vatekey")
		}
		i = k + 1
	}
}

// scanWireGuard finds every "PrivateKey = key" and examines the key: exactly 44
// characters of standard base64 that decode to 32 bytes, and not filler.
func (s *keyScanner) scanWireGuard(text []byte) error {
	for i := 0; ; {
		p := indexWireGuardName(text, i)
		if p < 0 {
			return nil
		}
		i = p
		for p < len(text) && (text[p] == ' ' || text[p] == '\t') {
			p++
		}
		if p >= len(text) || text[p] != '=' {
			continue
		}
		p++
		for p < len(text) && (text[p] == ' ' || text[p] == '\t') {
			p++
		}
		if p+44 > len(text) || text[p+43] != '=' || (p+44 < len(text) && b64Class[text[p+44]]) {
			continue
		}
		if err := s.candidate(); err != nil {
			return err
		}
		var key [33]byte
		n, err := base64.StdEncoding.Decode(key[:], text[p:p+44])
		if err != nil || n != 32 || isFiller(key[:32]) {
			continue
		}
		s.add(KindWireGuard, sha256.Sum256(key[:32]), false)
		i = p + 44
	}
}
