package policy

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// A third corpus: the wrappings and formats a tool loads as a key although the text
// does not look like PEM, each beside a benign lookalike. Every key is generated at
// test time.

type corpus3Keys struct {
	rsa    *rsa.PrivateKey
	pkcs8  []byte // the RSA key, PKCS#8 DER
	pem    string // the RSA key, PKCS#8 PEM
	lines  []string
	ec     *ecdsa.PrivateKey
	cert   *x509.Certificate
	certDE []byte
}

var (
	corpus3Once sync.Once
	corpus3Val  *corpus3Keys
)

func corpus3(t testing.TB) *corpus3Keys {
	t.Helper()
	corpus3Once.Do(func() {
		k := &corpus3Keys{}
		k.rsa = must(rsa.GenerateKey(rand.Reader, 2048))
		k.pkcs8 = must(x509.MarshalPKCS8PrivateKey(k.rsa))
		k.pem = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k.pkcs8}))
		k.lines = strings.Split(strings.TrimSuffix(k.pem, "\n"), "\n")
		k.ec = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "agent"},
			NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0)}
		k.certDE = must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsa.PublicKey, k.rsa))
		k.cert = must(x509.ParseCertificate(k.certDE))
		corpus3Val = k
	})
	return corpus3Val
}

// body is the base64 of the key without line breaks: no output may hold 8 characters
// of it.
func (k *corpus3Keys) body() string { return base64.StdEncoding.EncodeToString(k.pkcs8) }

func (k *corpus3Keys) fingerprint() string { return fingerprintOf(k.pkcs8) }

func fingerprintOf(b []byte) string { return keyFingerprint(sha256.Sum256(b)) }

// joinPEMLines is joinLines for another PEM text.
func joinPEMLines(text, prefix, format, sep, suffix string) string {
	k := &corpus3Keys{lines: strings.Split(strings.TrimSuffix(text, "\n"), "\n")}
	return k.joinLines(prefix, format, sep, suffix)
}

// joinLines writes each line of the PEM as the template says, %s standing for the line.
func (k *corpus3Keys) joinLines(prefix, format, sep, suffix string) string {
	parts := make([]string, len(k.lines))
	for i, l := range k.lines {
		parts[i] = fmt.Sprintf(format, l)
	}
	return prefix + strings.Join(parts, sep) + suffix
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// jksWith is a Java keystore (JKS) with one entry of the given tag (1 private key,
// 2 trusted certificate), its key protected as keytool does (the bytes are opaque).
func jksWith(tag uint32, cert []byte) []byte {
	var b bytes.Buffer
	w := func(v any) { _ = binary.Write(&b, binary.BigEndian, v) }
	utf := func(s string) { w(uint16(len(s))); b.WriteString(s) }
	w(uint32(0xFEEDFEED))
	w(uint32(2))
	w(uint32(1))
	w(tag)
	utf("agent")
	w(uint64(1700000000000))
	if tag == 1 {
		protected := concat(derSeq(derSeq([]byte{0x06, 0x06, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a}, []byte{0x05, 0x00}), derTLV(0x04, randBytes(1232))))
		w(uint32(len(protected)))
		b.Write(protected)
		w(uint32(1))
	}
	utf("X.509")
	w(uint32(len(cert)))
	b.Write(cert)
	b.Write(randBytes(20)) // the keyed SHA-1 digest
	return b.Bytes()
}

// corpus3Cases are values of one ConfigMap data key that hold the key (want true) or
// hold none although they look alike (want false).
func corpus3Cases(t testing.TB) []struct {
	name  string
	value string
	want  bool
} {
	k := corpus3(t)
	body := k.body()
	der := k.pkcs8
	pfx := must(pkcs12.Modern.Encode(k.rsa, k.cert, nil, "changeit"))
	trust := must(pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{k.cert}, "changeit"))
	wgKey := randBytes(32)
	jwkD := k.ec.D.FillBytes(make([]byte, 32))
	xB, yB := k.ec.X.FillBytes(make([]byte, 32)), k.ec.Y.FillBytes(make([]byte, 32))
	u := base64.RawURLEncoding.EncodeToString
	std := base64.StdEncoding.EncodeToString
	uEscape := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		return b.String()
	}
	sa := `{"type":"service_account","project_id":"demo","private_key":"` + uEscape(k.pem) + `","client_email":"sa@demo.iam.gserviceaccount.com"}`
	relabel := func(label string) string {
		return strings.ReplaceAll(k.pem, "PRIVATE KEY", label)
	}
	return []struct {
		name  string
		value string
		want  bool
	}{
		{"python-literals", k.joinLines("KEY = (\n", `    "%s\n"`, "\n", "\n)\n"), true},
		{"javascript-concat", k.joinLines("const key =\n", `  '%s\n'`, " +\n", ";\n"), true},
		{"java-concat", k.joinLines("String key = ", `"%s\n"`, " +\n    ", ";\n"), true},
		{"shell-echo", k.joinLines("", `echo "%s" >> key.pem`, "\n", "\n"), true},
		{"shell-printf", k.joinLines("printf '%%s\\n' \\\n", `  '%s'`, " \\\n", " > key.pem\n"), true},
		{"xml-entities", k.joinLines("<key>", "%s", "&#10;", "&#10;</key>"), true},
		{"hash-prefix", k.joinLines("", "# %s", "\n", "\n"), true},
		{"quote-prefix", k.joinLines("", "> %s", "\n", "\n"), true},
		{"label-public-key", relabel("PUBLIC KEY"), true},
		{"label-certificate", relabel("CERTIFICATE"), true},
		{"label-parameters", relabel("DH PARAMETERS"), true},
		{"label-tls-key", relabel("TLS KEY"), true},
		{"label-key", relabel("KEY"), true},
		{"dash-word-after-base64", "key=" + body + "-----END PRIVATE KEY-----", true},
		{"dash-word-after-unpadded-base64", "key=" + base64.RawStdEncoding.EncodeToString(der) + "-----END PRIVATE KEY-----", true},
		{"dash-suffix-after-unpadded-base64", base64.RawStdEncoding.EncodeToString(der) + "-prod", true},
		{"der-trailing-bytes", std(append(append([]byte{}, der...), randBytes(24)...)), true},
		{"pem-der-trailing-bytes", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: append(append([]byte{}, der...), randBytes(24)...)})), true},
		{"gzip-base64-pem", std(gzipBytes([]byte(k.pem))), true},
		{"gzip-base64-der", std(gzipBytes(der)), true},
		{"hex-der", hex.EncodeToString(der), true},
		{"hex-pem", hex.EncodeToString([]byte(k.pem)), true},
		{"pkcs12-base64", std(pfx), true},
		{"jks-base64", std(jksWith(1, k.certDE)), true},
		{"wireguard", "[Interface]\nAddress = 10.8.0.2/24\nPrivateKey = " + std(wgKey) + "\nDNS = 10.8.0.1\n", true},
		{"jwk-yaml", "kty: EC\ncrv: P-256\nx: " + u(xB) + "\ny: " + u(yB) + "\nd: " + u(jwkD) + "\n", true},
		{"jwk-standard-base64-d", `{"kty":"EC","crv":"P-256","x":"` + u(xB) + `","y":"` + u(yB) + `","d":"` + std(jwkD) + `"}`, true},
		{"unicode-escaped-json", sa, true},

		// Lookalikes.
		{"python-literals-of-a-certificate", joinPEMLines(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.certDE})), "CERT = (\n", `    "%s\n"`, "\n", "\n)\n"), false},
		{"xml-entities-of-a-certificate", joinPEMLines(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.certDE})), "<cert>", "%s", "&#10;", "&#10;</cert>"), false},
		{"hash-prefixed-public-key", "# " + strings.ReplaceAll(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&k.rsa.PublicKey))})), "\n", "\n# "), false},
		{"certificate", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.certDE})), false},
		{"gzip-base64-text", std(gzipBytes([]byte(strings.Repeat("log line of an agent\n", 200)))), false},
		{"hex-of-a-certificate", hex.EncodeToString(k.certDE), false},
		{"hex-digests", strings.Repeat(hex.EncodeToString(randBytes(32))+"  file.tar.gz\n", 40), false},
		{"pkcs12-truststore", std(trust), false},
		{"jks-truststore", std(jksWith(2, k.certDE)), false},
		{"wireguard-public-key", "[Peer]\nPublicKey = " + std(randBytes(32)) + "\nAllowedIPs = 0.0.0.0/0\n", false},
		{"wireguard-placeholder", "[Interface]\nPrivateKey = <your private key>\n", false},
		{"jwk-yaml-public", "kty: EC\ncrv: P-256\nx: " + u(xB) + "\ny: " + u(yB) + "\n", false},
		{"jwk-placeholder-d", `{"kty":"RSA","n":"` + u(k.rsa.N.Bytes()) + `","e":"AQAB","d":"<private exponent>"}`, false},
		{"jwk-placeholder-d-x", `{"kty":"EC","crv":"P-256","x":"` + u(xB) + `","y":"` + u(yB) + `","d":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`, false},
		{"jwk-placeholder-d-word", `{"kty":"EC","crv":"P-256","x":"` + u(xB) + `","y":"` + u(yB) + `","d":"REPLACE_WITH_YOUR_PRIVATE_KEY"}`, false},
		{"digestinfo-sha256", std(concat(derSeq(derSeq([]byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}, []byte{0x05, 0x00}), derTLV(0x04, randBytes(32))))), false},
		{"unicode-escaped-json-public", `{"type":"authorized_user","client_id":"` + uEscape("1234.apps.example") + `","note":"` + uEscape("-----BEGIN CERTIFICATE-----") + `"}`, false},
	}
}

func corpus3ConfigMap(t testing.TB, data map[string]string, binary map[string][]byte) []byte {
	t.Helper()
	obj := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "agent-settings", "namespace": "team-a"}, "data": data}
	if binary != nil {
		obj["binaryData"] = binary
	}
	return must(json.Marshal(obj))
}

func TestCorpus3WrappingsAndFormats(t *testing.T) {
	k := corpus3(t)
	for _, tc := range corpus3Cases(t) {
		t.Run(tc.name, func(t *testing.T) {
			raw := corpus3ConfigMap(t, map[string]string{"v": tc.value}, nil)
			findings, err := DetectPrivateKeys(raw, "ConfigMap", DefaultConfig())
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			got := len(RejectingKeys(findings)) > 0
			if got != tc.want {
				t.Fatalf("rejected=%v, want %v (findings %v)", got, tc.want, findings)
			}
			for _, f := range findings {
				assertNoCorpus3Key(t, k, f.String())
			}
		})
	}
}

func assertNoCorpus3Key(t *testing.T, k *corpus3Keys, out string) {
	t.Helper()
	body := k.body()
	for i := 0; i+8 <= len(body); i++ {
		if strings.Contains(out, body[i:i+8]) {
			t.Fatalf("output holds key material: %q", out)
		}
	}
}

// Keystores and gzip in binaryData (base64 in the object's JSON), and the fingerprint
// of a key that trails other bytes is the key's own.
func TestCorpus3BinaryDataAndFingerprints(t *testing.T) {
	k := corpus3(t)
	pfx := must(pkcs12.Modern.Encode(k.rsa, k.cert, nil, "changeit"))
	trust := must(pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{k.cert}, "changeit"))
	for _, tc := range []struct {
		name string
		data []byte
		kind string // "" for none
	}{
		{"pkcs12", pfx, KindPKCS12},
		{"jks", jksWith(1, k.certDE), KindJKS},
		{"gzip-pem", gzipBytes([]byte(k.pem)), KindRSAPKCS8},
		{"der-with-trailing-bytes", append(append([]byte{}, k.pkcs8...), randBytes(40)...), KindRSAPKCS8},
		{"pkcs12-truststore", trust, ""},
		{"jks-truststore", jksWith(2, k.certDE), ""},
		{"gzip-of-logs", gzipBytes([]byte(strings.Repeat("GET /healthz 200\n", 500))), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := corpus3ConfigMap(t, nil, map[string][]byte{"store": tc.data})
			findings, err := DetectPrivateKeys(raw, "ConfigMap", DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			rejecting := RejectingKeys(findings)
			if tc.kind == "" {
				if len(rejecting) != 0 {
					t.Fatalf("want no key, got %v", rejecting)
				}
				return
			}
			if len(rejecting) != 1 || rejecting[0].Kind != tc.kind || rejecting[0].Field != "binaryData.store" {
				t.Fatalf("want one %s at binaryData.store, got %v", tc.kind, rejecting)
			}
			if tc.kind == KindRSAPKCS8 && rejecting[0].Fingerprint != k.fingerprint() {
				t.Errorf("fingerprint %s, want the key's own %s", rejecting[0].Fingerprint, k.fingerprint())
			}
		})
	}
}

// A stream that inflates far beyond the object's size is cut off by the budget and the
// object counts as not inspected: never allowed unread.
func TestCorpus3GzipBombIsNotAllowedUnread(t *testing.T) {
	bomb := gzipBytes(make([]byte, 256<<20))
	raw := corpus3ConfigMap(t, nil, map[string][]byte{"bomb": bomb})
	_, err := DetectPrivateKeys(raw, "ConfigMap", DefaultConfig())
	var limit *KeyLimitError
	if !errors.As(err, &limit) {
		t.Fatalf("a %d-byte stream inflating to 256 MiB: want a *KeyLimitError, got %v", len(bomb), err)
	}
}

// A PEM key split line by line over adjacent env vars or ConfigMap keys is one key; a
// certificate split the same way is none.
func TestCorpus3PEMSplitOverEnvVarsAndConfigMapKeys(t *testing.T) {
	k := corpus3(t)
	cert := strings.Split(strings.TrimSuffix(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.certDE})), "\n"), "\n")
	pod := func(lines []string) []byte {
		env := []map[string]string{{"name": "MODE", "value": "prod"}}
		for i, l := range lines {
			env = append(env, map[string]string{"name": fmt.Sprintf("KEY_%02d", i), "value": l})
		}
		return must(json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"},
			"spec": map[string]any{"containers": []any{map[string]any{"name": "agent", "image": "agent:1", "env": env}}}}))
	}
	configMap := func(lines []string) []byte {
		data := map[string]string{"mode": "prod"}
		for i, l := range lines {
			data[fmt.Sprintf("line%02d", i)] = l
		}
		return corpus3ConfigMap(t, data, nil)
	}
	for _, tc := range []struct {
		name      string
		raw       []byte
		kind      string
		wantField string
	}{
		{"env-vars", pod(k.lines), "Pod", "spec.containers[0].env[1].value"},
		{"configmap-keys", configMap(k.lines), "ConfigMap", "data.line00"},
		{"env-vars-certificate", pod(cert), "Pod", ""},
		{"configmap-keys-certificate", configMap(cert), "ConfigMap", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			findings, err := DetectPrivateKeys(tc.raw, tc.kind, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			rejecting := RejectingKeys(findings)
			if tc.wantField == "" {
				if len(rejecting) != 0 {
					t.Fatalf("want no key, got %v", rejecting)
				}
				return
			}
			if len(rejecting) != 1 || rejecting[0].Field != tc.wantField || rejecting[0].Fingerprint != k.fingerprint() {
				t.Fatalf("want the key once at %s (%s), got %v", tc.wantField, k.fingerprint(), rejecting)
			}
			assertNoCorpus3Key(t, k, rejecting[0].String())
		})
	}
}
