package policy

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// A second corpus: key formats, encodings and object shapes the first corpus does not
// reach. Every key is generated at test time.

var (
	corpus2Once sync.Once
	corpus2Keys []corpusKey
)

func corpus2(t *testing.T) []corpusKey {
	t.Helper()
	corpus2Once.Do(func() { corpus2Keys = buildCorpus2() })
	return corpus2Keys
}

var (
	oidEd25519  = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}
	oidX448     = []byte{0x06, 0x03, 0x2b, 0x65, 0x6f}
	oidEd448    = []byte{0x06, 0x03, 0x2b, 0x65, 0x71}
	oidRSAPSS   = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a}
	oidDSA      = []byte{0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01}
	oidECPublic = []byte{0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}
	oidK256     = []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a}
	oidScrypt   = []byte{0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x04, 0x0b}
)

// fakeRSA is a PKCS#1 structure of the given modulus size with random integers; the
// detector looks at structure, and generating real 8192-bit keys takes too long.
func fakeRSA(bits int) []byte {
	n := bits / 8
	r := func(l int) []byte { b := randBytes(l); b[0] |= 0x80; return b }
	return derSeq(derInt([]byte{0}), derInt(r(n)), derInt([]byte{1, 0, 1}), derInt(r(n)), derInt(r(n/2)), derInt(r(n/2)), derInt(r(n/2)), derInt(r(n/2)), derInt(r(n/2)))
}

func buildCorpus2() []corpusKey {
	var keys []corpusKey
	addPEM := func(name, label string, der []byte, kinds ...string) {
		text := corpusPEM(label, nil, der)
		keys = append(keys, corpusKey{name: name, text: text, body: corpusBody(text), kinds: kinds, pem: true})
	}
	rsa4096 := must(rsa.GenerateKey(rand.Reader, 4096))
	addPEM("rsa-4096-pkcs1", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa4096), "RSA private key")
	addPEM("rsa-4096-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(rsa4096)), "RSA private key")
	addPEM("rsa-8192-pkcs1", "RSA PRIVATE KEY", fakeRSA(8192), "RSA private key")
	addPEM("rsa-16384-pkcs1", "RSA PRIVATE KEY", fakeRSA(16384), "RSA private key")

	x := must(ecdh.X25519().GenerateKey(rand.Reader))
	addPEM("x25519-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(x)), "X25519")
	octet := func(b []byte) []byte { return derTLV(0x04, b) }
	addPEM("x448-pkcs8", "PRIVATE KEY", derSeq(derInt([]byte{0}), derSeq(oidX448), octet(octet(randBytes(56)))), "X448")
	addPEM("ed448-pkcs8", "PRIVATE KEY", derSeq(derInt([]byte{0}), derSeq(oidEd448), octet(octet(randBytes(57)))), "Ed448")
	addPEM("rsa-pss-pkcs8", "PRIVATE KEY", derSeq(derInt([]byte{0}), derSeq(oidRSAPSS), octet(x509.MarshalPKCS1PrivateKey(rsa4096))), "RSA")
	// OneAsymmetricKey (RFC 5958) version 1 with the public key attached.
	pub := append([]byte{0}, randBytes(32)...)
	addPEM("ed25519-pkcs8-v2", "PRIVATE KEY", derSeq(derInt([]byte{1}), derSeq(oidEd25519), octet(octet(randBytes(32))), derTLV(0x81, pub)), "Ed25519")

	for _, cv := range []struct {
		name  string
		curve elliptic.Curve
	}{{"p384", elliptic.P384()}, {"p521", elliptic.P521()}} {
		k := must(ecdsa.GenerateKey(cv.curve, rand.Reader))
		addPEM("ec-"+cv.name+"-sec1", "EC PRIVATE KEY", must(x509.MarshalECPrivateKey(k)), "EC private key")
		addPEM("ec-"+cv.name+"-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(k)), "EC private key")
	}
	k1 := derSeq(derInt([]byte{1}), octet(randBytes(32)), derTLV(0xa0, oidK256), derTLV(0xa1, derTLV(0x03, append([]byte{0, 4}, randBytes(64)...))))
	addPEM("ec-secp256k1-sec1", "EC PRIVATE KEY", k1, "EC private key")
	addPEM("ec-secp256k1-pkcs8", "PRIVATE KEY", derSeq(derInt([]byte{0}), derSeq(oidECPublic, oidK256), octet(k1)), "EC private key")

	p, q, g := randBytes(256), randBytes(32), randBytes(256)
	p[0] |= 0x80
	addPEM("dsa-pkcs8", "PRIVATE KEY", derSeq(derInt([]byte{0}), derSeq(oidDSA, derSeq(derInt(p), derInt(q), derInt(g))), octet(derInt(randBytes(32)))), "DSA")

	oidPBES2 := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d}
	oidAES256CBC := []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a}
	scrypt := derSeq(
		derSeq(oidPBES2, derSeq(
			derSeq(oidScrypt, derSeq(octet(randBytes(16)), derInt([]byte{0x40, 0x00}), derInt([]byte{8}), derInt([]byte{1}))),
			derSeq(oidAES256CBC, octet(randBytes(16))))),
		octet(randBytes(1232)))
	addPEM("encrypted-pkcs8-scrypt", "ENCRYPTED PRIVATE KEY", scrypt, "encrypted PKCS#8")

	for _, o := range []struct {
		name, comment, pass string
		key                 any
	}{
		{"openssh-rsa4096-bcrypt-aes256ctr", "deploy@ci (rotated 2026-01)", "correct horse", rsa4096},
		{"openssh-ecdsa-p521-comment", "ünïcode comment ✓", "", must(ecdsa.GenerateKey(elliptic.P521(), rand.Reader))},
		{"openssh-rsa4096-plain", "", "", rsa4096},
	} {
		var blk *pem.Block
		kind := KindOpenSSH
		if o.pass == "" {
			blk = must(ssh.MarshalPrivateKey(o.key, o.comment))
		} else {
			blk = must(ssh.MarshalPrivateKeyWithPassphrase(o.key, o.comment, []byte(o.pass)))
			kind = KindOpenSSHEncrypted
		}
		text := string(pem.EncodeToMemory(blk))
		keys = append(keys, corpusKey{name: o.name, text: text, body: corpusBody(text), kinds: []string{kind}, pem: true})
	}
	return keys
}

// corpus2Encodings are ways of writing a key's text that the first corpus leaves out.
var corpus2Encodings = []struct {
	name   string
	encode func(k corpusKey) string
}{
	{"literal", func(k corpusKey) string { return k.text }},
	{"cr-only", func(k corpusKey) string { return strings.ReplaceAll(k.text, "\n", "\r") }},
	{"tab-indented-body", func(k corpusKey) string {
		return strings.ReplaceAll(strings.TrimRight(k.text, "\n"), "\n", "\n\t\t") + "\n"
	}},
	{"json-in-yaml-in-env", func(k corpusKey) string {
		inner := string(must(json.Marshal(map[string]string{"key": k.text})))
		outer := string(must(json.Marshal(inner)))
		return "config: " + outer + "\n"
	}},
	{"helm-values-block-scalar", func(k corpusKey) string {
		ind := "      " + strings.ReplaceAll(strings.TrimRight(k.text, "\n"), "\n", "\n      ")
		return "replicaCount: 2\nimage:\n  repository: registry.example.com/agent\n  tag: \"1.2\"\nagent:\n  tls:\n    enabled: true\n    key: |\n" + ind + "\n  resources: {}\n"
	}},
	// base64 of the whole text wrapped at widths other than 64 and 76.
	{"base64-wrap-60-uuencode", func(k corpusKey) string { return wrap(corpusB64(k.text), 60) }},
	{"base64-wrap-48", func(k corpusKey) string { return wrap(corpusB64(k.text), 48) }},
	{"base64-wrap-16", func(k corpusKey) string { return wrap(corpusB64(k.text), 16) }},
	{"base64-wrap-40-crlf", func(k corpusKey) string { return strings.ReplaceAll(wrap(corpusB64(k.text), 40), "\n", "\r\n") }},
	{"base64-wrap-60-escaped", func(k corpusKey) string { return strings.ReplaceAll(wrap(corpusB64(k.text), 60), "\n", `\n`) }},
	{"base64-wrap-32-folded", func(k corpusKey) string { return strings.ReplaceAll(wrap(corpusB64(k.text), 32), "\n", " ") }},
	{"base64-wrap-60-indented", func(k corpusKey) string { return "  " + strings.ReplaceAll(wrap(corpusB64(k.text), 60), "\n", "\n  ") }},
}

func corpus2Sandbox(v string, depth int) map[string]any {
	leaf := map[string]any{"value": v}
	for i := 0; i < depth; i++ {
		leaf = map[string]any{fmt.Sprintf("level%d", depth-i): leaf}
	}
	return map[string]any{"apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox", "metadata": map[string]any{"name": "sb"},
		"spec": map[string]any{"podTemplate": map[string]any{"spec": map[string]any{"containers": []any{corpusContainer("x")}}}, "extensions": leaf}}
}

var corpus2Locations = []corpusLocation{
	{name: "pod-env-value", build: func(v string) (map[string]any, string) {
		return corpusPod(map[string]any{"containers": []any{corpusContainer(v)}}, nil), "Pod"
	}},
	{name: "configmap-data", build: func(v string) (map[string]any, string) {
		return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c"}, "data": map[string]any{"values.yaml": v}}, "ConfigMap"
	}},
	{name: "sandbox-v1beta1-depth-20", build: func(v string) (map[string]any, string) { return corpus2Sandbox(v, 20), "Sandbox" }},
	{name: "init-container-args", build: func(v string) (map[string]any, string) {
		return corpusPod(map[string]any{"containers": []any{corpusContainer("x")}, "initContainers": []any{map[string]any{"name": "init", "image": "a", "args": []any{"--tls-key=" + v}}}}, nil), "Pod"
	}},
}

func TestCorpus2RejectsMoreFormatsEncodingsAndLocations(t *testing.T) {
	for _, k := range corpus2(t) {
		for _, e := range corpus2Encodings {
			for _, loc := range corpus2Locations {
				t.Run(k.name+"/"+e.name+"/"+loc.name, func(t *testing.T) {
					obj, kind := loc.build(e.encode(k))
					corpusWantReject(t, obj, kind, k, 1)
				})
			}
		}
	}
}

// The first corpus's keys wrapped at other widths than 64 and 76.
func TestCorpus2RejectsFirstCorpusWrappedAtOtherWidths(t *testing.T) {
	for _, k := range corpus(t).keys {
		for _, e := range corpus2Encodings[5:] {
			t.Run(k.name+"/"+e.name, func(t *testing.T) {
				obj, kind := corpus2Locations[0].build(e.encode(k))
				corpusWantReject(t, obj, kind, k, 1)
			})
		}
	}
}

func corpus2ConfigMapBinary(v []byte) map[string]any {
	// encoding/json writes []byte as base64, as the API server does for binaryData.
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c"},
		"data": map[string]any{"a": "b"}, "binaryData": map[string]any{"tls.key": v, "other": []byte("plain bytes")}}
}

func TestCorpus2RejectsConfigMapBinaryData(t *testing.T) {
	c := corpus(t)
	all := append(append([]corpusKey(nil), c.keys...), corpus2(t)...)
	for _, k := range all {
		t.Run(k.name+"/pem-bytes", func(t *testing.T) {
			corpusWantReject(t, corpus2ConfigMapBinary([]byte(k.text)), "ConfigMap", k, 1)
		})
		if !k.pem || !strings.HasPrefix(k.text, "-----BEGIN") {
			continue
		}
		// The key is the last block (openssl ecparam writes parameters first).
		var blk *pem.Block
		for rest := []byte(k.text); ; {
			b, r := pem.Decode(rest)
			if b == nil {
				break
			}
			blk, rest = b, r
		}
		if blk == nil || len(blk.Headers) != 0 {
			continue
		}
		t.Run(k.name+"/der-bytes", func(t *testing.T) {
			corpusWantReject(t, corpus2ConfigMapBinary(blk.Bytes), "ConfigMap", corpusKey{name: k.name, body: k.body, kinds: k.kinds}, 1)
		})
	}
}

func corpus2ArgsPod(field string, parts []string) map[string]any {
	arr := []any{"--verbose", "--key"}
	for _, p := range parts {
		arr = append(arr, p)
	}
	arr = append(arr, "--port=8443")
	return corpusPod(map[string]any{"containers": []any{map[string]any{"name": "agent", "image": "a", field: arr}}}, nil)
}

// A PEM key with its lines spread over adjacent elements of one array.
func TestCorpus2RejectsPEMSplitOverArrayElements(t *testing.T) {
	c := corpus(t)
	all := append(append([]corpusKey(nil), c.keys...), corpus2(t)...)
	for _, k := range all {
		if !strings.HasPrefix(k.text, "-----BEGIN") {
			continue
		}
		lines := strings.Split(strings.TrimRight(k.text, "\n"), "\n")
		first, last := lines[0], lines[len(lines)-1]
		body := strings.Join(lines[1:len(lines)-1], "\n")
		shapes := map[string][]string{
			"three-elements":   {first, body, last},
			"line-per-element": lines,
			"one-line-body":    {first, strings.ReplaceAll(body, "\n", ""), last},
		}
		for name, parts := range shapes {
			for _, field := range []string{"args", "command"} {
				t.Run(k.name+"/"+name+"/"+field, func(t *testing.T) {
					findings, err := corpusDetect(t, corpus2ArgsPod(field, parts), "Pod")
					if err == nil {
						for _, f := range findings {
							if !strings.Contains(f.Field, "."+field+"[") {
								t.Errorf("finding names the wrong field: %v", f)
							}
						}
					}
					corpusWantReject(t, corpus2ArgsPod(field, parts), "Pod", k, 1)
				})
			}
		}
	}
}

func TestCorpus2AllowsPublicAndPlaceholderBlocksSplitOverArrayElements(t *testing.T) {
	c := corpus(t)
	for name, text := range map[string]string{
		"certificate":      c.public["certificate"],
		"chain":            c.public["certificate-chain"],
		"public-key":       c.public["public-key-pkix-rsa"],
		"placeholder":      "-----BEGIN PRIVATE KEY-----\n<your key here>\n-----END PRIVATE KEY-----\n",
		"truncated":        c.public["truncated-pkcs8"],
		"unterminated":     "-----BEGIN PRIVATE KEY-----\n",
		"random-body":      corpusPEM("PRIVATE KEY", nil, randBytes(1200)),
		"end-before-begin": "-----END PRIVATE KEY-----\n" + corpusBody(corpusPEM("X", nil, randBytes(600))) + "\n-----BEGIN PRIVATE KEY-----\n",
	} {
		lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
		t.Run(name, func(t *testing.T) { corpusWantAllow(t, corpus2ArgsPod("args", lines), "Pod") })
	}
	// An unterminated BEGIN followed by many elements is scanned once, in linear time.
	t.Run("unterminated-then-many-elements", func(t *testing.T) {
		parts := []string{"-----BEGIN PRIVATE KEY-----"}
		for i := 0; i < 20000; i++ {
			parts = append(parts, fmt.Sprintf("--flag-%d=value", i))
		}
		corpusWantAllow(t, corpus2ArgsPod("args", parts), "Pod")
	})
	t.Run("many-begins", func(t *testing.T) {
		var parts []string
		for i := 0; i < 5000; i++ {
			parts = append(parts, "-----BEGIN PRIVATE KEY-----", "abc")
		}
		findings, err := corpusDetect(t, corpus2ArgsPod("args", parts), "Pod")
		var limit *KeyLimitError
		if err != nil && !errors.As(err, &limit) {
			t.Fatal(err)
		}
		if len(RejectingKeys(findings)) != 0 {
			t.Fatalf("rejected: %v", findings)
		}
	})
}

// corpus2Raw checks a request body written by hand, so JSON escapes reach the detector.
func corpus2Raw(t *testing.T, raw string, kind string) ([]KeyFinding, error) {
	t.Helper()
	if !json.Valid([]byte(raw)) {
		t.Fatalf("test built invalid JSON")
	}
	return DetectPrivateKeys([]byte(raw), kind, DefaultConfig())
}

func TestCorpus2RejectsServiceAccountWithExtraFieldsAndUnicodeEscapes(t *testing.T) {
	c := corpus(t)
	saPEM := corpusPEM("PRIVATE KEY", nil, must(x509.MarshalPKCS8PrivateKey(c.rsa)))
	body := corpusBody(saPEM)
	esc := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			switch {
			case r == '\n':
				b.WriteString(`\u000a`)
			case r == '-' || r == '_' || r == '"':
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	sa := `{"type":"service\u005faccount","project_id":"demo","private_key_id":"` + hex.EncodeToString(randBytes(20)) +
		`","private\u005fkey":"` + esc(saPEM) + `","client_email":"a@demo.iam.gserviceaccount.com","client_id":"1",` +
		`"labels":{"team":"ägents ✓"},"extra":[1,2,{"x":null}],"universe_domain":"googleapis.com","note":"\u2603"}`
	k := corpusKey{name: "sa", body: body, kinds: []string{KindGoogleSA, "RSA private key"}}
	check := func(t *testing.T, findings []KeyFinding, err error) {
		t.Helper()
		if err != nil {
			var limit *KeyLimitError
			if !errors.As(err, &limit) {
				t.Fatal(err)
			}
			corpusNoMaterial(t, body, err.Error())
			return
		}
		if len(RejectingKeys(findings)) == 0 {
			t.Fatalf("allowed: %v", findings)
		}
		corpusNoMaterial(t, body, fmt.Sprint(findings), KeyDenialMessage(findings))
	}
	t.Run("configmap-structured", func(t *testing.T) {
		f, err := corpus2Raw(t, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"b"},"sa":`+sa+`}`, "ConfigMap")
		check(t, f, err)
	})
	t.Run("env-value-json-text", func(t *testing.T) {
		obj := corpusPod(map[string]any{"containers": []any{corpusContainer(sa)}}, nil)
		corpusWantReject(t, obj, "Pod", k, 1)
	})
	t.Run("raw-escaped-env", func(t *testing.T) {
		f, err := corpus2Raw(t, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"a","env":[{"name":"K","value":"`+esc(saPEM)+`"}]}]}}`, "Pod")
		check(t, f, err)
	})
}

func TestCorpus2AllowsLookalikes(t *testing.T) {
	c := corpus(t)
	csr := must(x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "PRIVATE KEY", Organization: []string{"-----BEGIN PRIVATE KEY-----"}}}, c.rsa))
	sshCA := must(ssh.NewSignerFromKey(c.ed))
	cert := &ssh.Certificate{Key: must(ssh.NewPublicKey(&c.ec.PublicKey)), Serial: 1, CertType: ssh.UserCert, KeyId: "user", ValidPrincipals: []string{"user"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, sshCA); err != nil {
		t.Fatal(err)
	}
	sshEdCert := &ssh.Certificate{Key: must(ssh.NewPublicKey(c.ed.Public())), Serial: 2, CertType: ssh.HostCert, KeyId: "host", ValidBefore: ssh.CertTimeInfinity}
	if err := sshEdCert.SignCert(rand.Reader, sshCA); err != nil {
		t.Fatal(err)
	}
	awsSecret := base64.StdEncoding.EncodeToString(randBytes(30))
	var ids, words strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&ids, "%s\n", base64.RawURLEncoding.EncodeToString(randBytes(18)))
		words.WriteString("internationalization configurationmanagement ")
	}
	values := map[string]string{
		"private-key-id-only":      `{"type":"service_account","project_id":"demo","private_key_id":"` + hex.EncodeToString(randBytes(20)) + `","client_email":"a@demo.iam.gserviceaccount.com"}`,
		"jwk-empty-d":              fmt.Sprintf(`{"kty":"EC","crv":"P-256","x":%q,"y":%q,"d":""}`, base64.RawURLEncoding.EncodeToString(randBytes(32)), base64.RawURLEncoding.EncodeToString(randBytes(32))),
		"jwk-oct-empty-k":          `{"kty":"oct","k":""}`,
		"jwt":                      corpusJWT(c.rsa),
		"jws-detached":             strings.Split(corpusJWT(c.rsa), ".")[0] + ".." + strings.Split(corpusJWT(c.rsa), ".")[2],
		"aws-secret-access-key":    "AWS_ACCESS_KEY_ID=AKIA" + strings.ToUpper(hex.EncodeToString(randBytes(8))) + "\nAWS_SECRET_ACCESS_KEY=" + awsSecret + "\n",
		"aws-credentials-file":     "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = " + awsSecret + "\n",
		"pgp-public-block":         c.public["pgp-public-key"],
		"ssh-user-cert":            string(ssh.MarshalAuthorizedKey(cert)),
		"ssh-ed25519-host-cert":    string(ssh.MarshalAuthorizedKey(sshEdCert)),
		"private-key-random-body":  corpusPEM("PRIVATE KEY", nil, randBytes(1200)),
		"rsa-key-random-body":      corpusPEM("RSA PRIVATE KEY", nil, randBytes(1200)),
		"openssh-random-body":      corpusPEM("OPENSSH PRIVATE KEY", nil, randBytes(400)),
		"csr-private-subject":      corpusPEM("CERTIFICATE REQUEST", nil, csr),
		"cert-then-public":         c.chain + c.public["public-key-pkix-rsa"],
		"random-base64-wrap-60":    wrap(base64.StdEncoding.EncodeToString(randBytes(2048)), 60),
		"random-base64-wrap-16":    wrap(base64.StdEncoding.EncodeToString(randBytes(2048)), 16),
		"certificate-b64-wrap-60":  wrap(corpusB64(c.chain), 60),
		"list-of-ids":              ids.String(),
		"long-words":               words.String(),
		"hex-wrapped-32":           wrap(hex.EncodeToString(randBytes(512)), 32),
		"hex-of-der-not-in-design": hex.EncodeToString(randBytes(600)),
	}
	for name, v := range values {
		for _, loc := range corpus2Locations {
			t.Run(name+"/"+loc.name, func(t *testing.T) {
				obj, kind := loc.build(v)
				corpusWantAllow(t, obj, kind)
			})
		}
		t.Run(name+"/binaryData", func(t *testing.T) { corpusWantAllow(t, corpus2ConfigMapBinary([]byte(v)), "ConfigMap") })
	}
	t.Run("csr-der-binaryData", func(t *testing.T) { corpusWantAllow(t, corpus2ConfigMapBinary(csr), "ConfigMap") })
}
