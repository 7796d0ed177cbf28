package policy

import (
	"bufio"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"software.sslmate.com/src/go-pkcs12"
)

// The cases of each recognizer and peel live in testdata/keys/<family>.txt, one file per
// keys_<family>.go. A file holds cases separated by blank lines; '#' starts a comment
// line. A case is "name: value" lines:
//
//	case:   what the case shows (required)
//	key:    a generator (keyCaseSources); NAME.bytes is its key's bytes, not its text
//	wrap:   encodings applied to the key in order, comma-separated (keyCaseWraps)
//	text:   the value, {{key}} standing for the wrapped key; Go-quoted if it starts
//	        with '"'; {{key}} if absent
//	object: the object's kind (ConfigMap if absent)
//	field:  where the value goes, such as spec.containers[0].env[0].value (data.key if
//	        absent)
//	finds:  "<kind> at <field>", once per finding in document order, or "nothing"
//
// Keys are generated when the test runs; no file holds key material. A finding of a
// generated key must carry its fingerprint.

type keyCase struct {
	file, line             string
	name, key, text, field string
	object                 string
	wraps                  []string
	finds                  []string
}

// keyCaseSource is a generated value: its text or bytes, and the key material its
// finding's fingerprint is taken over (nil for a lookalike).
type keyCaseSource struct {
	value    []byte
	material []byte
}

var (
	keyCaseSourcesOnce sync.Once
	keyCaseSourcesVal  map[string]keyCaseSource
)

// keyCaseSources are the generators cases name: every key fixture and public material
// (keys_fixtures_test.go), and the keystores, WireGuard and YAML JWK values of corpus3.
func keyCaseSources(t *testing.T) map[string]keyCaseSource {
	t.Helper()
	fixtures := keyFixtures(t)
	public := publicMaterial(t)
	k := corpus3(t)
	keyCaseSourcesOnce.Do(func() {
		m := map[string]keyCaseSource{}
		for _, f := range fixtures {
			m[f.name] = keyCaseSource{value: []byte(f.text), material: f.material}
			m[f.name+".bytes"] = keyCaseSource{value: f.material, material: f.material}
		}
		for name, text := range public {
			m[name] = keyCaseSource{value: []byte(text)}
		}
		m["certificate.bytes"] = keyCaseSource{value: k.certDE}
		pfx := must(pkcs12.Modern.Encode(k.rsa, k.cert, nil, "changeit"))
		m["pkcs12.bytes"] = keyCaseSource{value: pfx, material: pfx}
		m["pkcs12-truststore.bytes"] = keyCaseSource{value: must(pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{k.cert}, "changeit"))}
		jks := jksWith(1, k.certDE)
		m["jks.bytes"] = keyCaseSource{value: jks, material: jks}
		m["jks-truststore.bytes"] = keyCaseSource{value: jksWith(2, k.certDE)}
		m["digestinfo-sha256.bytes"] = keyCaseSource{value: derSeq(derSeq([]byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}, []byte{0x05, 0x00}), derTLV(0x04, randBytes(32)))}
		wg := randBytes(32)
		m["wireguard-private"] = keyCaseSource{value: []byte(base64.StdEncoding.EncodeToString(wg)), material: wg}
		m["wireguard-public"] = keyCaseSource{value: []byte(base64.StdEncoding.EncodeToString(randBytes(32)))}
		u := base64.RawURLEncoding.EncodeToString
		d := k.ec.D.FillBytes(make([]byte, 32))
		xy := "x: " + u(k.ec.X.FillBytes(make([]byte, 32))) + "\ny: " + u(k.ec.Y.FillBytes(make([]byte, 32))) + "\n"
		m["jwk-yaml-ec"] = keyCaseSource{value: []byte("kty: EC\ncrv: P-256\n" + xy + "d: " + u(d) + "\n"), material: d}
		m["jwk-yaml-public"] = keyCaseSource{value: []byte("kty: EC\ncrv: P-256\n" + xy)}
		m["log-text"] = keyCaseSource{value: []byte(strings.Repeat("log line of an agent\n", 200))}
		keyCaseSourcesVal = m
	})
	return keyCaseSourcesVal
}

// keyCaseWraps are the encodings a case may apply to its key.
var keyCaseWraps = map[string]func([]byte) []byte{
	"base64":     func(b []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(b)) },
	"base64url":  func(b []byte) []byte { return []byte(base64.RawURLEncoding.EncodeToString(b)) },
	"base64-76":  func(b []byte) []byte { return []byte(wrap(base64.StdEncoding.EncodeToString(b), 76)) },
	"hex":        func(b []byte) []byte { return []byte(hex.EncodeToString(b)) },
	"gzip":       gzipBytes,
	"percent":    func(b []byte) []byte { return []byte(url.QueryEscape(string(b))) },
	"json":       func(b []byte) []byte { return must(json.Marshal(string(b))) },
	"escaped-nl": func(b []byte) []byte { return []byte(strings.ReplaceAll(string(b), "\n", `\n`)) },
	"one-line":   func(b []byte) []byte { return []byte(strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", " ")) },
	"hash-prefix": func(b []byte) []byte {
		return []byte("# " + strings.ReplaceAll(strings.TrimSuffix(string(b), "\n"), "\n", "\n# ") + "\n")
	},
	"python-literals": func(b []byte) []byte {
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		for i, l := range lines {
			lines[i] = `    "` + l + `\n"`
		}
		return []byte("KEY = (\n" + strings.Join(lines, "\n") + "\n)\n")
	},
	"uescape": func(b []byte) []byte {
		var s strings.Builder
		for _, r := range string(b) {
			fmt.Fprintf(&s, `\u%04x`, r)
		}
		return []byte(s.String())
	},
}

// wrapKeyCase applies a wrap; "pem:LABEL" encodes the bytes as a PEM block of LABEL.
func wrapKeyCase(name string, b []byte) ([]byte, error) {
	if label, ok := strings.CutPrefix(name, "pem:"); ok {
		return pem.EncodeToMemory(&pem.Block{Type: label, Bytes: b}), nil
	}
	w, ok := keyCaseWraps[name]
	if !ok {
		return nil, fmt.Errorf("unknown wrap %q", name)
	}
	return w(b), nil
}

func loadKeyCases(t *testing.T) []keyCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "keys", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files in testdata/keys (%v)", err)
	}
	var cases []keyCase
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var c *keyCase
		flush := func() {
			if c != nil {
				cases = append(cases, *c)
				c = nil
			}
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			switch {
			case line == "":
				flush()
				continue
			case strings.HasPrefix(line, "#"):
				continue
			}
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("%s:%d: want \"name: value\"", path, n)
			}
			value = strings.TrimSpace(value)
			if c == nil {
				c = &keyCase{file: filepath.Base(path), line: strconv.Itoa(n), object: "ConfigMap", field: "data.key", text: "{{key}}"}
			}
			plain := map[string]*string{"case": &c.name, "key": &c.key, "object": &c.object, "field": &c.field}
			if p, ok := plain[name]; ok {
				*p = value
				continue
			}
			switch name {
			case "wrap":
				for _, w := range strings.Split(value, ",") {
					c.wraps = append(c.wraps, strings.TrimSpace(w))
				}
			case "text":
				if strings.HasPrefix(value, `"`) {
					if value, err = strconv.Unquote(value); err != nil {
						t.Fatalf("%s:%d: text: %v", path, n, err)
					}
				}
				c.text = value
			case "finds":
				c.finds = append(c.finds, value)
			default:
				t.Fatalf("%s:%d: unknown field %q", path, n, name)
			}
		}
		flush()
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return cases
}

// keyCaseObject builds an object of kind with value at field, a path of members and
// [i] indexes (arrays are filled with empty objects up to i).
func keyCaseObject(kind, field string, value string) ([]byte, error) {
	obj := map[string]any{"apiVersion": "v1", "kind": kind, "metadata": map[string]any{"name": "case", "namespace": "team-a"}}
	var cur any = obj
	parts := strings.Split(field, ".")
	for i, p := range parts {
		name, idx := p, -1
		if k := strings.IndexByte(p, '['); k >= 0 && strings.HasSuffix(p, "]") {
			n, err := strconv.Atoi(p[k+1 : len(p)-1])
			if err != nil {
				return nil, fmt.Errorf("field %q: %v", field, err)
			}
			name, idx = p[:k], n
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("field %q: %s is not an object", field, name)
		}
		last := i == len(parts)-1
		if idx < 0 {
			if last {
				m[name] = value
				break
			}
			if _, ok := m[name].(map[string]any); !ok {
				m[name] = map[string]any{}
			}
			cur = m[name]
			continue
		}
		arr, _ := m[name].([]any)
		for len(arr) <= idx {
			arr = append(arr, map[string]any{"name": fmt.Sprintf("%s-%d", name, len(arr))})
		}
		m[name] = arr
		if last {
			arr[idx] = value
			break
		}
		cur = arr[idx]
	}
	return json.Marshal(obj)
}

func TestKeyCasesFromTestdata(t *testing.T) {
	sources := keyCaseSources(t)
	cfg := DefaultConfig()
	for _, c := range loadKeyCases(t) {
		t.Run(strings.TrimSuffix(c.file, ".txt")+"/"+c.name, func(t *testing.T) {
			at := c.file + ":" + c.line
			if c.name == "" || len(c.finds) == 0 {
				t.Fatalf("%s: a case needs case: and finds:", at)
			}
			var src keyCaseSource
			if c.key != "" {
				var ok bool
				if src, ok = sources[c.key]; !ok {
					t.Fatalf("%s: unknown key generator %q", at, c.key)
				}
			}
			v := src.value
			for _, w := range c.wraps {
				var err error
				if v, err = wrapKeyCase(w, v); err != nil {
					t.Fatalf("%s: %v", at, err)
				}
			}
			if !utf8.Valid(v) {
				t.Fatalf("%s: the value is bytes: wrap it (base64, hex)", at)
			}
			value := strings.ReplaceAll(c.text, "{{key}}", string(v))
			raw, err := keyCaseObject(c.object, c.field, value)
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			findings, err := DetectPrivateKeys(raw, c.object, cfg)
			if err != nil {
				t.Fatalf("%s: %v", at, err)
			}
			var got []string
			for _, f := range findings {
				got = append(got, f.Kind+" at "+f.Field)
			}
			want := c.finds
			if len(want) == 1 && want[0] == "nothing" {
				want = nil
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("%s: finds %s, want %s", at, showFinds(got), showFinds(want))
			}
			if src.material == nil {
				return
			}
			fp := keyFingerprint(sha256.Sum256(src.material))
			body := base64.StdEncoding.EncodeToString(src.material)
			for _, f := range findings {
				if f.Rejects() && f.Fingerprint != fp {
					t.Errorf("%s: fingerprint %s, want %s (that of the generated key)", at, f.Fingerprint, fp)
				}
				for i := 0; i+8 <= len(body); i++ {
					if strings.Contains(f.String(), body[i:i+8]) {
						t.Fatalf("%s: a finding holds key material", at)
					}
				}
			}
		})
	}
}

func showFinds(finds []string) string {
	if len(finds) == 0 {
		return "nothing"
	}
	return "\n\t" + strings.Join(finds, "\n\t") + "\n"
}

// keyStageFiles are the files of the pipeline's walk and dispatch stages; every other
// keys_<family>.go is a peel or a recognizer and has its cases in
// testdata/keys/<family>.txt.
var keyStageFiles = map[string]bool{
	"keys.go": true, "keys_doc.go": true, "keys_budget.go": true, "keys_scanner.go": true,
	"keys_walk.go": true, "keys_split.go": true, "keys_triggers.go": true,
	"keys_scan_text.go": true, "keys_classify.go": true,
}

func TestEveryKeyRecognizerHasCases(t *testing.T) {
	files, err := filepath.Glob("keys*.go")
	if err != nil {
		t.Fatal(err)
	}
	families := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || keyStageFiles[f] {
			continue
		}
		family := strings.TrimSuffix(strings.TrimPrefix(f, "keys_"), ".go")
		families[family] = true
		if _, err := os.Stat(filepath.Join("testdata", "keys", family+".txt")); err != nil {
			t.Errorf("%s has no cases: add testdata/keys/%s.txt", f, family)
		}
	}
	cases, _ := filepath.Glob(filepath.Join("testdata", "keys", "*.txt"))
	for _, c := range cases {
		if family := strings.TrimSuffix(filepath.Base(c), ".txt"); !families[family] {
			t.Errorf("%s names no recognizer or peel file keys_%s.go", c, family)
		}
	}
}
