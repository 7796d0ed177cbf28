package policy

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzDetectPrivateKeys puts a generated key, in one of several encodings, between
// fuzzed text in a pod and checks that detection never panics, stays within its bounds
// and never echoes any 8 characters of the key body in a finding, error or message.
func FuzzDetectPrivateKeys(f *testing.F) {
	fx := keyFixtures(f)
	f.Add([]byte("prefix "), []byte(" suffix"), uint8(0), uint8(0))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----"), []byte("-----END"), uint8(3), uint8(1))
	f.Add([]byte("LS0tLS1CRUdJTi"), []byte("%2D%2D"), uint8(5), uint8(2))
	f.Add([]byte(`{"kty":"oct","k":"`), []byte(`"}`), uint8(7), uint8(3))
	f.Add([]byte("AGE-SECRET-KEY-1"), []byte("PuTTY-User-Key-File-2: Private-Lines: 1"), uint8(9), uint8(4))
	encodings := []func(string) string{
		func(s string) string { return s },
		func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		func(s string) string { return strings.ReplaceAll(s, "\n", `\n`) },
		func(s string) string { return url.QueryEscape(s) },
		func(s string) string { return strings.ReplaceAll(s, "\n", " ") },
	}
	cfg := DefaultConfig()
	cfg.PrivateKeys.WorkPerByte = 8
	f.Fuzz(func(t *testing.T, prefix, suffix []byte, which, enc uint8) {
		k := fx[int(which)%len(fx)]
		value := string(prefix) + encodings[int(enc)%len(encodings)](k.text) + string(suffix)
		pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"}, "spec": map[string]any{"containers": []any{
			map[string]any{"name": "agent", "image": "agent:1", "env": []any{map[string]any{"name": "KEY", "value": value}}},
		}}}
		raw, err := json.Marshal(pod)
		if err != nil {
			t.Skip()
		}
		findings, err := DetectPrivateKeys(raw, "Pod", cfg)
		var out []string
		if err != nil {
			var limit *KeyLimitError
			if !errors.As(err, &limit) {
				t.Fatalf("a valid object gave a non-limit error: %v", err)
			}
			out = append(out, err.Error())
		}
		for _, fd := range findings {
			out = append(out, fmt.Sprintf("%+v", fd), fd.String())
		}
		out = append(out, KeyDenialMessage(findings))
		// The fuzzed text may itself hold runs of the body; only runs that the object
		// holds nowhere else than in the key can leak from the key.
		for i := 0; i+8 <= len(k.body); i++ {
			run := k.body[i : i+8]
			if strings.Contains(string(prefix)+string(suffix), run) {
				continue
			}
			for _, o := range out {
				if strings.Contains(o, run) {
					t.Fatalf("output holds key material: %q", o)
				}
			}
		}
	})
}

// FuzzDetectPrivateKeysRaw feeds arbitrary bytes as the object: no panic, and an
// error or findings, never both.
func FuzzDetectPrivateKeysRaw(f *testing.F) {
	f.Add([]byte(`{"a":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"}`))
	f.Add([]byte(`{"kty":"EC","d":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Add([]byte(`[{"type":"service_account","private_key":"x"}]`))
	f.Add([]byte(`"` + strings.Repeat("QUFB", 40) + `"`))
	f.Add([]byte(`{"a":"\u002d\u002d\u002d\u002d\u002dBEGIN PRIVATE KEY\u002d\u002d\u002d\u002d\u002d\nMIIE"}`))
	f.Add([]byte(`{"a":"# key\n{\"\u006bty\":\"EC\",\"d\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}\n-----BEGIN CERTIFICATE-----"}`))
	cfg := DefaultConfig()
	f.Fuzz(func(t *testing.T, raw []byte) {
		findings, err := DetectPrivateKeys(raw, "ConfigMap", cfg)
		if err != nil && findings != nil {
			t.Fatalf("findings with an error: %v", err)
		}
	})
}

// FuzzDetectPrivateKeysCost checks the cost of detection on any bytes with a key planted
// in the middle: the work counted stays under workBound and the bytes allocated under
// allocBound, both linear in the input; nothing panics; and no error, finding or message
// holds 8 characters of the key that the fuzzed bytes do not hold themselves. The
// seeds are the hostile families at 2 KiB. Run it with -fuzzminimizetime of a few
// seconds: minimizing a large input otherwise takes most of the run.
func FuzzDetectPrivateKeysCost(f *testing.F) {
	fx := keyFixtures(f)
	for i, fam := range hostileFamilies {
		f.Add(fam.build(rand.New(rand.NewPCG(hostileSeed, uint64(i))), 2<<10), uint8(i))
	}
	f.Add([]byte(`{"data":{"a":"`), uint8(0))
	f.Add([]byte(`["`), uint8(3))
	cfg := DefaultConfig()
	f.Fuzz(func(t *testing.T, raw []byte, which uint8) {
		k := fx[int(which)%len(fx)]
		quoted, err := json.Marshal(k.text)
		if err != nil {
			t.Fatal(err)
		}
		mid := len(raw) / 2
		obj := slices.Concat(raw[:mid], quoted[1:len(quoted)-1], raw[mid:])
		findings, work, alloc, err := measuredDetect(obj, cfg)
		if bound := workBound(len(obj), cfg.PrivateKeys.WorkPerByte); work > bound {
			t.Fatalf("%d bytes: work %d over the linear bound %d", len(obj), work, bound)
		}
		if bound := allocBound(len(obj)); alloc > bound {
			t.Fatalf("%d bytes: allocated %d, over the linear bound %d", len(obj), alloc, bound)
		}
		if err != nil && findings != nil {
			t.Fatalf("findings with an error: %v", err)
		}
		var out []string
		if err != nil {
			out = append(out, err.Error())
		}
		for _, fd := range findings {
			out = append(out, fmt.Sprintf("%+v", fd), fd.String())
		}
		out = append(out, KeyDenialMessage(findings))
		for i := 0; i+8 <= len(k.body); i++ {
			run := k.body[i : i+8]
			if strings.Contains(string(raw), run) {
				continue
			}
			for _, o := range out {
				if strings.Contains(o, run) {
					t.Fatalf("output holds key material: %q", o)
				}
			}
		}
	})
}
