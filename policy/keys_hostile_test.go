package policy

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// hostileSeed seeds every generated hostile object, so that each run builds the same
// bytes.
const hostileSeed = 20261205

// verdict is how detection may end for an object.
type verdict uint8

const (
	mayPass    verdict = 1 << iota // findings (maybe none), no error
	mayLimit                       // a *KeyLimitError: denied, not inspected
	mayNotJSON                     // a plain error: the object is not valid JSON
)

// hostileFamily is one shape of object built to make the scanner work hard: n is the
// size to build, about.
type hostileFamily struct {
	name    string
	build   func(rng *rand.Rand, n int) []byte
	verdict verdict
}

// configMapWith is a ConfigMap whose data holds value under one key.
func configMapWith(value string) []byte {
	raw, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "hostile", "namespace": "team-a"}, "data": map[string]any{"value": value}})
	if err != nil {
		panic(err)
	}
	return raw
}

// repeatTo repeats what next returns until the text is n bytes long, about.
func repeatTo(n int, next func(i int) string) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(next(i))
	}
	return b.String()
}

func loremTo(n int) string {
	return repeatTo(n, func(int) string { return "lorem ipsum dolor sit amet, consectetur adipiscing elit. " })
}

func randomBase64(rng *rand.Rand, n int, enc *base64.Encoding) string {
	b := make([]byte, n*3/4+3)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return enc.EncodeToString(b)[:n]
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

var hostileFamilies = []hostileFamily{
	{"putty-headers-then-text", func(_ *rand.Rand, n int) []byte {
		headers := strings.Repeat("PuTTY-User-Key-File-2: ssh-ed25519\n", max(1, n*4000/(1<<20)))
		return configMapWith(headers + loremTo(n-len(headers)))
	}, mayPass | mayLimit},
	{"putty-files-sharing-one-mac", func(rng *rand.Rand, n int) []byte {
		files := strings.Repeat("PuTTY-User-Key-File-2: ssh-rsa\nEncryption: none\nPrivate-Lines: 1\n", max(1, n/4/66))
		return configMapWith(files + randomBase64(rng, n-len(files)-20, base64.StdEncoding) + "\nPrivate-MAC: 00\n")
	}, mayPass | mayLimit},
	{"small-jwks-in-one-string", func(rng *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string {
			return `{"kty":"oct","k":"` + base64.RawURLEncoding.EncodeToString(randomBytes(rng, 16)) + `"} `
		}))
	}, mayPass | mayLimit},
	{"small-jwks-as-array", func(_ *rand.Rand, n int) []byte {
		jwk := `{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAA"}`
		return []byte(`{"kind":"ConfigMap","keys":[` + jwk + strings.Repeat(","+jwk, n/(len(jwk)+1)) + "]}")
	}, mayPass | mayLimit},
	{"age-keys", func(rng *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string {
			return strings.ToUpper(bech32Encode("age-secret-key-", randomBytes(rng, 32))) + "\n"
		}))
	}, mayPass | mayLimit},
	{"pem-begin-markers", func(_ *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string { return "-----BEGIN RSA PRIVATE KEY-----" }))
	}, mayPass | mayLimit},
	{"pem-blocks-of-noise", func(rng *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string {
			return "-----BEGIN PRIVATE KEY-----\n" + randomBase64(rng, 64, base64.StdEncoding) + "\n-----END PRIVATE KEY-----\n"
		}))
	}, mayPass | mayLimit},
	{"one-base64-run", func(rng *rand.Rand, n int) []byte {
		return configMapWith(randomBase64(rng, n, base64.StdEncoding))
	}, mayPass | mayLimit},
	{"wrapped-base64", func(rng *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string { return randomBase64(rng, 76, base64.StdEncoding) + "\n" }))
	}, mayPass | mayLimit},
	{"short-base64-runs", func(rng *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string { return randomBase64(rng, 64, base64.StdEncoding) + " . " }))
	}, mayPass | mayLimit},
	{"base64-of-base64-of-markers", func(_ *rand.Rand, n int) []byte {
		inner := repeatTo(n*6/10, func(int) string { return "-----BEGIN PRIVATE KEY-----\nabc\n" })
		return configMapWith(b64(b64(inner))[:n])
	}, mayPass | mayLimit},
	{"unclosed-jwk-objects", func(_ *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string { return `{"kty" ` }))
	}, mayPass | mayLimit},
	{"percent-escapes", func(_ *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string { return "%2D%2D%2D%2D%2DBEGIN%20" }))
	}, mayPass | mayLimit},
	{"wireguard-near-matches", func(_ *rand.Rand, n int) []byte {
		// Each line a name, a name without its value, and a value one character short.
		return configMapWith(repeatTo(n, func(i int) string {
			return fmt.Sprintf("PrivateKey = privatekey= PRIVATEKEY =%042d==\n", i)
		}))
	}, mayPass | mayLimit},
	{"hex-of-markers", func(_ *rand.Rand, n int) []byte {
		return configMapWith(hex.EncodeToString([]byte(repeatTo(n/2, func(int) string { return "-----BEGIN PRIVATE KEY-----\nabc\n" }))))
	}, mayPass | mayLimit},
	{"hex-of-der-starts", func(_ *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string { return "3082" + strings.Repeat("0", 124) + " " }))
	}, mayPass | mayLimit},
	{"source-literal-markers", func(_ *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string { return `k = "-----BEGIN PRIVATE KEY-----\n" + "AAAA\n"` + "\n" }))
	}, mayPass | mayLimit},
	{"xml-line-references", func(_ *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string { return "&#10;&#13;&#xA;&#xd;x-----BEGIN PRIVATE KEY-----" }))
	}, mayPass | mayLimit},
	{"yaml-jwk-blocks", func(rng *rand.Rand, n int) []byte {
		return configMapWith(repeatTo(n, func(int) string {
			return "- kty: oct\n  k: " + base64.RawURLEncoding.EncodeToString(randomBytes(rng, 4)) + "\n  use: sig\n"
		}))
	}, mayPass | mayLimit},
	{"gzip-bomb-in-base64", func(_ *rand.Rand, n int) []byte {
		bomb := base64.StdEncoding.EncodeToString(gzipBytes(make([]byte, 64*n)))
		return configMapWith(bomb + strings.Repeat(" ", max(0, n-len(bomb))))
	}, mayLimit},
	{"gzip-bomb-with-lying-trailer", func(_ *rand.Rand, n int) []byte {
		z := gzipBytes(make([]byte, 64*n))
		copy(z[len(z)-4:], []byte{0, 0, 1, 0}) // says 64 KiB
		bomb := base64.StdEncoding.EncodeToString(z)
		return configMapWith(bomb + strings.Repeat(" ", max(0, n-len(bomb))))
	}, mayLimit},
	{"split-markers-over-env-vars", func(_ *rand.Rand, n int) []byte {
		var env []string
		for size := 0; size < n; size += 80 {
			env = append(env, `{"name":"K","value":"-----BEGIN PRIVATE KEY-----"}`)
		}
		return []byte(`{"kind":"Pod","spec":{"containers":[{"name":"a","env":[` + strings.Join(env, ",") + `]}]}}`)
	}, mayPass | mayLimit},
	{"deep-arrays", func(_ *rand.Rand, n int) []byte {
		d := (n - 40) / 2
		return []byte(`{"a":"-----BEGIN X-----","b":` + strings.Repeat("[", d) + strings.Repeat("]", d) + "}")
	}, mayLimit},
	{"deep-objects", func(_ *rand.Rand, n int) []byte {
		d := (n - 40) / 6
		return []byte(`{"x":"-----BEGIN X-----","b":` + strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d) + "}")
	}, mayLimit},
	{"deep-arrays-unclosed", func(_ *rand.Rand, n int) []byte {
		return []byte(`{"a":"-----BEGIN X-----","b":` + strings.Repeat("[", n-30))
	}, mayLimit | mayNotJSON},
	{"invalid-utf8", func(_ *rand.Rand, n int) []byte {
		return []byte(`{"data":{"v":"-----BEGIN ` + repeatTo(n, func(int) string { return "\xff\xfe-----" }) + `"}}`)
	}, mayNotJSON},
	{"not-json", func(_ *rand.Rand, n int) []byte {
		return []byte(repeatTo(n, func(int) string { return "-----BEGIN RSA PRIVATE KEY-----\n" }))
	}, mayNotJSON},
	{"duplicate-names", func(_ *rand.Rand, n int) []byte {
		return []byte(`{"data":{"NAME-----BEGIN":"-----BEGIN X-----","pad":"` + loremTo(n) + `","NAME-----BEGIN":"x"}}`)
	}, mayNotJSON},
}

// allowedVerdict checks that err is one of the ends v allows; no error may quote the
// object.
func allowedVerdict(t *testing.T, v verdict, findings []KeyFinding, err error) string {
	t.Helper()
	var limit *KeyLimitError
	switch {
	case err == nil:
		if v&mayPass == 0 {
			t.Fatalf("want an error, got %d findings", len(findings))
		}
		return fmt.Sprintf("passed, %d findings", len(findings))
	case errors.As(err, &limit):
		if v&mayLimit == 0 {
			t.Fatalf("want no limit error, got %v", err)
		}
	case errors.Is(err, errNotJSON):
		if v&mayNotJSON == 0 {
			t.Fatalf("want no JSON error, got %v", err)
		}
	default:
		t.Fatalf("unexpected error %T: %v", err, err)
	}
	for _, quoted := range []string{"BEGIN", "NAME", "lorem", "\xff", "kty", "PuTTY"} {
		if strings.Contains(err.Error(), quoted) {
			t.Fatalf("the error quotes the object (%q): %v", quoted, err)
		}
	}
	return err.Error()
}

// allocBound is the most the scanner may allocate for an object of n bytes: findings,
// decoded copies and the reader's state grow with the object; pools, first uses and
// whatever else the process allocates meanwhile fit in the constant.
func allocBound(n int) uint64 {
	return 64*uint64(n) + 8<<20
}

// measuredDetect runs detection once and returns what it allocated.
func measuredDetect(raw []byte, cfg *Config) ([]KeyFinding, int, uint64, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	findings, work, err := detectPrivateKeys(nil, raw, "ConfigMap", cfg)
	runtime.ReadMemStats(&after)
	return findings, work, after.TotalAlloc - before.TotalAlloc, err
}

// workBound is the most work the scanner may do on an object of n bytes: its budget
// and the last charge that overran it.
func workBound(n, perByte int) int {
	return workBudget(n, perByte) + 8*n + workPerFinding + workPerCandidate
}

// TestDetectPrivateKeysHostileFamiliesStayWithinLinearWork builds each hostile family at
// about 1 MiB and checks that detection ends in a verdict the family allows and that its
// work stays under a linear bound. Each family is also built at a quarter of the size:
// work that does not grow linearly with the object would show there, and the counter
// must not grow faster than the object.
func TestDetectPrivateKeysHostileFamiliesStayWithinLinearWork(t *testing.T) {
	t.Logf("seed %d", hostileSeed)
	cfg := DefaultConfig()
	per := cfg.PrivateKeys.WorkPerByte
	for _, fam := range hostileFamilies {
		t.Run(fam.name, func(t *testing.T) {
			small := fam.build(rand.New(rand.NewPCG(hostileSeed, 1)), 256<<10)
			large := fam.build(rand.New(rand.NewPCG(hostileSeed, 2)), 1<<20)
			var works [2]int
			var ends [2]string
			var allocs [2]uint64
			for i, raw := range [][]byte{small, large} {
				findings, work, alloc, err := measuredDetect(raw, cfg)
				ends[i] = allowedVerdict(t, fam.verdict, findings, err)
				if bound := workBound(len(raw), per); work > bound {
					t.Fatalf("%d bytes: work %d over the linear bound %d", len(raw), work, bound)
				}
				if bound := allocBound(len(raw)); alloc > bound {
					t.Fatalf("%d bytes: allocated %d, over the linear bound %d", len(raw), alloc, bound)
				}
				works[i], allocs[i] = work, alloc
			}
			t.Logf("%d bytes: work %d (%.1f/byte), %s; %d bytes: work %d (%.1f/byte), allocated %.1f/byte, %s",
				len(small), works[0], float64(works[0])/float64(len(small)), ends[0],
				len(large), works[1], float64(works[1])/float64(len(large)), float64(allocs[1])/float64(len(large)), ends[1])
			// Four times the bytes: at most four times the work, and the allowance.
			if ratio := float64(len(large)) / float64(len(small)); float64(works[1]) > 1.1*ratio*float64(works[0])+workBase {
				t.Fatalf("work grows faster than the object: %d for %d bytes, %d for %d", works[0], len(small), works[1], len(large))
			}
		})
	}
}

// TestDetectPrivateKeysDeepNestingUpTo7MB checks nesting at sizes up to 7 MB (with the
// object bound raised to let them in): the walk stops at its own depth bound.
func TestDetectPrivateKeysDeepNestingUpTo7MB(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PrivateKeys.MaxObjectBytes = 8 << 20
	for _, size := range []int{1 << 20, 3 << 20, 7 << 20} {
		for _, fam := range hostileFamilies {
			if !strings.HasPrefix(fam.name, "deep-") {
				continue
			}
			t.Run(fmt.Sprintf("%s-%dMiB", fam.name, size>>20), func(t *testing.T) {
				raw := fam.build(nil, size)
				findings, work, err := detectPrivateKeys(nil, raw, "ConfigMap", cfg)
				allowedVerdict(t, fam.verdict, findings, err)
				if bound := workBound(len(raw), cfg.PrivateKeys.WorkPerByte); work > bound {
					t.Fatalf("work %d over the linear bound %d", work, bound)
				}
			})
		}
	}
}

// TestDetectPrivateKeysUntilStopsWhenDone checks that a closed done channel stops the
// scan with the deadline reason, and that an open one changes nothing.
func TestDetectPrivateKeysUntilStopsWhenDone(t *testing.T) {
	k := keyFixtures(t)[0]
	raw := configMapWith(k.text + "\n" + loremTo(200<<10))
	closed := make(chan struct{})
	close(closed)
	_, err := DetectPrivateKeysUntil(closed, raw, "ConfigMap", DefaultConfig())
	var limit *KeyLimitError
	if !errors.As(err, &limit) || limit.Reason != ReasonDeadline {
		t.Fatalf("want a limit error with the deadline reason, got %v", err)
	}
	assertNoKeyMaterial(t, k.body, err.Error())
	open := make(chan struct{})
	findings, err := DetectPrivateKeysUntil(open, raw, "ConfigMap", DefaultConfig())
	if err != nil || len(findings) != 1 || findings[0].Fingerprint != k.fingerprint() {
		t.Fatalf("want the key, got %+v, %v", findings, err)
	}
}

// TestDetectPrivateKeysRefusesInvalidJSONWithoutQuotingIt checks the errors for objects
// that are not valid JSON: each says why and where, and quotes nothing of the object.
func TestDetectPrivateKeysRefusesInvalidJSONWithoutQuotingIt(t *testing.T) {
	for name, c := range map[string]struct{ raw, reason string }{
		"duplicate-names": {`{"data":{"SECRETNAME--":"-----BEGIN X","SECRETNAME--":"y"}}`, "duplicate object member name"},
		"invalid-utf8":    {"{\"data\":{\"SECRETNAME--\":\"-----BEGIN \xff\"}}", "invalid UTF-8"},
		"truncated":       {`{"data":{"SECRETNAME--":"-----BEGIN X"`, "unexpected end of input"},
		"bad-character":   {`{"data":{"SECRETNAME--" "-----BEGIN X"}}`, "unexpected character"},
		"two-values":      {`{"a":"-----BEGIN X"} {"SECRETNAME--":1}`, "more than one value"},
		"name-not-string": {`{"a":"-----BEGIN X",SECRETNAME:1}`, "unexpected character"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DetectPrivateKeys([]byte(c.raw), "ConfigMap", DefaultConfig())
			if !errors.Is(err, errNotJSON) || !strings.Contains(err.Error(), c.reason) || !strings.Contains(err.Error(), " at byte ") {
				t.Fatalf("want %q with a byte offset, got %v", c.reason, err)
			}
			for _, quoted := range []string{"SECRETNAME", "BEGIN", "data"} {
				if strings.Contains(err.Error(), quoted) {
					t.Fatalf("the error quotes the object: %v", err)
				}
			}
		})
	}
}
