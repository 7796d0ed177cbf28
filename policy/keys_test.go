package policy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// keyEncoding is one way a key's text reaches a field.
type keyEncoding struct {
	name string
	// applies says whether the encoding makes sense for a fixture.
	applies func(k keyFixture) bool
	encode  func(k keyFixture) string
	// kind overrides the expected kind (a kubeconfig names where the key was).
	kind func(k keyFixture) string
}

func always(keyFixture) bool { return true }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

var pemLine = regexp.MustCompile(`(?m)^-----(BEGIN|END) [A-Za-z0-9 ]+-----$`)

var keyEncodings = []keyEncoding{
	{name: "literal", encode: func(k keyFixture) string { return k.text }},
	{name: "crlf", encode: func(k keyFixture) string { return strings.ReplaceAll(k.text, "\n", "\r\n") }},
	{name: "yaml-folded", encode: func(k keyFixture) string { return strings.ReplaceAll(strings.TrimSpace(k.text), "\n", " ") }},
	{name: "escaped-newlines", encode: func(k keyFixture) string { return strings.ReplaceAll(k.text, "\n", `\n`) }},
	{name: "double-escaped-newlines", encode: func(k keyFixture) string { return strings.ReplaceAll(k.text, "\n", `\\n`) }},
	{name: "one-line-no-separators", encode: func(k keyFixture) string { return strings.ReplaceAll(k.text, "\n", "") }},
	{name: "indented", encode: func(k keyFixture) string { return "    " + strings.ReplaceAll(k.text, "\n", "\n    ") }},
	{name: "lowercase-label", applies: func(k keyFixture) bool { return k.multiline }, encode: func(k keyFixture) string {
		return pemLine.ReplaceAllStringFunc(k.text, strings.ToLower)
	}},
	{name: "base64", encode: func(k keyFixture) string { return b64(k.text) }},
	{name: "base64-wrapped-76", encode: func(k keyFixture) string { return wrap(b64(k.text), 76) }},
	{name: "base64-url", encode: func(k keyFixture) string { return base64.URLEncoding.EncodeToString([]byte(k.text)) }},
	{name: "base64-of-longer-text", encode: func(k keyFixture) string { return b64("# key for the agent, do not share\n" + k.text) }},
	{name: "base64-at-offset", encode: func(k keyFixture) string { return "cfg:v1:xyz" + b64("ab"+k.text) }},
	{name: "base64-glued", encode: func(k keyFixture) string { return "abc" + b64(k.text) }},
	{name: "base64-nested", encode: func(k keyFixture) string { return b64(b64(k.text)) }},
	{name: "base64-nested-3", encode: func(k keyFixture) string { return b64(b64(b64(k.text))) }},
	{name: "percent-query", encode: func(k keyFixture) string { return url.QueryEscape(k.text) }},
	{name: "percent-every-byte", encode: func(k keyFixture) string {
		var b strings.Builder
		for i := 0; i < len(k.text); i++ {
			fmt.Fprintf(&b, "%%%02X", k.text[i])
		}
		return b.String()
	}},
	{name: "percent-base64", encode: func(k keyFixture) string { return url.QueryEscape(b64(k.text)) }},
	// DER keys only: random material (OpenVPN, age, legacy ciphertext) may start 0x30 too.
	{name: "headerless-der-base64", applies: func(k keyFixture) bool {
		der := k.material[0] == 0x30 && strings.Contains(k.text, "PRIVATE KEY-----") && !strings.Contains(k.text, "Proc-Type")
		return der || strings.HasPrefix(k.name, "openssh")
	},
		encode: func(k keyFixture) string { return base64.StdEncoding.EncodeToString(k.material) },
		kind: func(k keyFixture) string {
			if k.kind == KindGoogleSA {
				return KindRSAPKCS8
			}
			return k.kind
		}},
	{name: "kubeconfig-client-key-data", applies: func(k keyFixture) bool {
		return strings.HasPrefix(k.name, "rsa-pkcs") || strings.HasPrefix(k.name, "ec-")
	},
		encode: func(k keyFixture) string {
			return "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    client-certificate-data: " + b64("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n") + "\n    client-key-data: " + b64(k.text) + "\n"
		},
		kind: func(k keyFixture) string { return kindPrefixKubeconfig + k.kind }},
	// Labels are case-insensitive: an age key and a PuTTY key file written in lower case.
	{name: "lowercase-header", applies: func(k keyFixture) bool { return k.name == "age" || k.name == "putty" },
		encode: func(k keyFixture) string { return lowercaseHeaders(k.text) }},
}

// lowercaseHeaders lowers the case of an age key and of PuTTY's header names, leaving
// PuTTY's base64 as it is.
func lowercaseHeaders(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if name, value, ok := strings.Cut(l, ":"); ok && !strings.HasPrefix(l, "#") {
			lines[i] = strings.ToLower(name) + ":" + value
		} else if strings.HasPrefix(strings.ToUpper(l), "AGE-SECRET-KEY-") {
			lines[i] = strings.ToLower(l)
		}
	}
	return strings.Join(lines, "\n")
}

// keyLocation places a string value in an object.
type keyLocation struct {
	name                  string
	kind                  string
	field, container, env string
	build                 func(value string) map[string]any
}

func podSpecWith(containers []any) map[string]any {
	return map[string]any{"containers": containers, "serviceAccountName": "default"}
}

var keyLocations = []keyLocation{
	{name: "pod-env-value", kind: "Pod", field: "spec.containers[1].env[1].value", container: "agent", env: "SIGNING_KEY",
		build: func(v string) map[string]any {
			return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"}, "spec": podSpecWith([]any{
				map[string]any{"name": "sidecar", "image": "busybox"},
				map[string]any{"name": "agent", "image": "agent:1", "env": []any{
					map[string]any{"name": "MODE", "value": "x"},
					map[string]any{"name": "SIGNING_KEY", "value": v},
				}},
			})}
		}},
	{name: "pod-args", kind: "Pod", field: "spec.containers[0].args[1]", container: "agent",
		build: func(v string) map[string]any {
			return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"}, "spec": podSpecWith([]any{
				map[string]any{"name": "agent", "image": "agent:1", "args": []any{"--key", v}},
			})}
		}},
	{name: "pod-ephemeral-container-env", kind: "Pod", field: "spec.ephemeralContainers[0].env[0].value", container: "debugger", env: "K",
		build: func(v string) map[string]any {
			spec := podSpecWith([]any{map[string]any{"name": "agent", "image": "agent:1"}})
			spec["ephemeralContainers"] = []any{map[string]any{"name": "debugger", "image": "busybox", "env": []any{map[string]any{"name": "K", "value": v}}}}
			return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"}, "spec": spec}
		}},
	{name: "pod-annotation", kind: "Pod", field: "metadata.annotations[example.com/config]",
		build: func(v string) map[string]any {
			return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p", "annotations": map[string]any{"example.com/config": v}}, "spec": podSpecWith([]any{})}
		}},
	{name: "configmap-data", kind: "ConfigMap", field: "data.id_rsa",
		build: func(v string) map[string]any {
			return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c"}, "data": map[string]any{"id_rsa": v, "other": "x"}}
		}},
	{name: "sandbox-cr", kind: "Sandbox", field: "spec.podTemplate.spec.containers[0].env[0].value", container: "agent", env: "KEY",
		build: func(v string) map[string]any {
			return map[string]any{"apiVersion": "agents.x-k8s.io/v1alpha1", "kind": "Sandbox", "metadata": map[string]any{"name": "s"}, "spec": map[string]any{"podTemplate": map[string]any{"spec": podSpecWith([]any{
				map[string]any{"name": "agent", "image": "agent:1", "env": []any{map[string]any{"name": "KEY", "value": v}}},
			})}}}
		}},
	{name: "deployment-init-container", kind: "Deployment", field: "spec.template.spec.initContainers[0].env[0].value", container: "init", env: "KEY",
		build: func(v string) map[string]any {
			spec := podSpecWith([]any{map[string]any{"name": "main", "image": "x"}})
			spec["initContainers"] = []any{map[string]any{"name": "init", "image": "x", "env": []any{map[string]any{"name": "KEY", "value": v}}}}
			return map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d"}, "spec": map[string]any{"template": map[string]any{"spec": spec}}}
		}},
	{name: "cronjob-command", kind: "CronJob", field: "spec.jobTemplate.spec.template.spec.containers[0].command[2]", container: "job",
		build: func(v string) map[string]any {
			return map[string]any{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": map[string]any{"name": "cj"}, "spec": map[string]any{"schedule": "* * * * *", "jobTemplate": map[string]any{"spec": map[string]any{"template": map[string]any{"spec": podSpecWith([]any{
				map[string]any{"name": "job", "image": "x", "command": []any{"sh", "-c", v}},
			})}}}}}
		}},
}

func detect(t testing.TB, obj map[string]any, kind string, cfg *Config) ([]KeyFinding, error) {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return DetectPrivateKeys(raw, kind, cfg)
}

// TestDetectPrivateKeysEveryFormatEncodingAndLocation is the matrix of README.md's
// "Private-key validation" (what counts): every format in every encoding in every location is
// found once, with the right field, names, kind and fingerprint.
func TestDetectPrivateKeysEveryFormatEncodingAndLocation(t *testing.T) {
	cfg := DefaultConfig()
	for _, k := range keyFixtures(t) {
		for _, e := range keyEncodings {
			if e.applies != nil && !e.applies(k) {
				continue
			}
			value := e.encode(k)
			wantKind := k.kind
			if e.kind != nil {
				wantKind = e.kind(k)
			}
			for _, loc := range keyLocations {
				t.Run(k.name+"/"+e.name+"/"+loc.name, func(t *testing.T) {
					findings, err := detect(t, loc.build(value), loc.kind, cfg)
					if err != nil {
						t.Fatalf("DetectPrivateKeys: %v", err)
					}
					if len(findings) != 1 {
						t.Fatalf("want 1 finding, got %d: %v", len(findings), findings)
					}
					f := findings[0]
					want := KeyFinding{Field: loc.field, Container: loc.container, Env: loc.env, Kind: wantKind, Fingerprint: k.fingerprint()}
					f.digest = want.digest
					if f != want {
						t.Errorf("finding\n got %+v\nwant %+v", f, want)
					}
					assertNoKeyMaterial(t, k.body, fmt.Sprint(findings), KeyDenialMessage(findings))
				})
			}
		}
	}
}

// assertNoKeyMaterial fails when any output holds 8 consecutive characters of body.
func assertNoKeyMaterial(t testing.TB, body string, outputs ...string) {
	t.Helper()
	for _, out := range outputs {
		for i := 0; i+8 <= len(body); i++ {
			if strings.Contains(out, body[i:i+8]) {
				t.Fatalf("output holds key material %q...", body[i:i+2])
			}
		}
	}
}

func TestDetectPrivateKeysAllowsPublicMaterialPlaceholdersAndReferences(t *testing.T) {
	cfg := DefaultConfig()
	for name, text := range publicMaterial(t) {
		for _, e := range []string{"literal", "base64", "escaped-newlines", "yaml-folded"} {
			var enc keyEncoding
			for _, x := range keyEncodings {
				if x.name == e {
					enc = x
				}
			}
			value := enc.encode(keyFixture{text: text})
			for _, loc := range keyLocations[:1] {
				t.Run(name+"/"+e, func(t *testing.T) {
					findings, err := detect(t, loc.build(value), loc.kind, cfg)
					if err != nil {
						t.Fatal(err)
					}
					if len(findings) != 0 {
						t.Errorf("want no finding, got %v", findings)
					}
				})
			}
		}
	}
}

func TestDetectPrivateKeysSecretKeyRefPodPasses(t *testing.T) {
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"}, "spec": podSpecWith([]any{
		map[string]any{"name": "agent", "image": "agent:1", "env": []any{map[string]any{"name": "KEY", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "agent-key", "key": "tls.key"}}}}},
	})}
	findings, err := detect(t, pod, "Pod", DefaultConfig())
	if err != nil || len(findings) != 0 {
		t.Fatalf("got %v, %v; want nothing", findings, err)
	}
}

func TestDetectPrivateKeysNeverScansSecrets(t *testing.T) {
	k := keyFixtures(t)[0]
	secret := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "s"}, "stringData": map[string]any{"tls.key": k.text}}
	findings, err := detect(t, secret, "Secret", DefaultConfig())
	if err != nil || len(findings) != 0 {
		t.Fatalf("got %v, %v; want nothing", findings, err)
	}
}

func TestDetectPrivateKeysReportsPublicKeyLabelledPrivateAsMalformed(t *testing.T) {
	keyFixtures(t)
	for name, text := range map[string]string{
		"pkcs1-public-as-rsa-private": string(pemEncode("RSA PRIVATE KEY", x509MarshalPKCS1Public())),
		"spki-as-private":             string(pemEncode("PRIVATE KEY", x509MarshalPKIX())),
	} {
		t.Run(name, func(t *testing.T) {
			findings, err := detect(t, keyLocations[0].build(text), "Pod", DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if len(findings) != 1 || !findings[0].Malformed || findings[0].Kind != KindMalformedPublic || findings[0].Rejects() {
				t.Fatalf("want one malformed, non-rejecting finding; got %+v", findings)
			}
		})
	}
}

func TestDetectPrivateKeysAllowListByFingerprint(t *testing.T) {
	fx := keyFixtures(t)
	allowed, other := fx[0], fx[2]
	cfg := DefaultConfig()
	cfg.PrivateKeys.AllowedFingerprints = []string{allowed.fingerprint()}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pod := keyLocations[0].build(allowed.text)
	findings, err := detect(t, pod, "Pod", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(findings) != 1 || !findings[0].Allowed || len(RejectingKeys(findings)) != 0 {
		t.Fatalf("allowed fixture: got %+v", findings)
	}
	findings, err = detect(t, keyLocations[0].build(other.text), "Pod", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(RejectingKeys(findings)) != 1 {
		t.Fatalf("a key not on the list must still be rejected, got %+v", findings)
	}
}

func TestDetectPrivateKeysStructuredGoogleKeyAndJWKInSpec(t *testing.T) {
	fx := keyFixtures(t)
	var sa, jwk keyFixture
	for _, k := range fx {
		switch k.name {
		case "google-sa":
			sa = k
		case "jwk-ec":
			jwk = k
		}
	}
	var saObj, jwkObj map[string]any
	if err := json.Unmarshal([]byte(sa.text), &saObj); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(jwk.text), &jwkObj); err != nil {
		t.Fatal(err)
	}
	cr := map[string]any{"apiVersion": "agents.x-k8s.io/v1beta1", "kind": "Sandbox", "metadata": map[string]any{"name": "s"},
		"spec": map[string]any{"credentials": map[string]any{"google": saObj, "signing": jwkObj}}}
	findings, err := detect(t, cr, "Sandbox", DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	want := []KeyFinding{
		{Field: "spec.credentials.google.private_key", Kind: KindGoogleSA, Fingerprint: sa.fingerprint()},
		{Field: "spec.credentials.signing.d", Kind: jwk.kind, Fingerprint: jwk.fingerprint()},
	}
	if len(findings) != len(want) {
		t.Fatalf("got %+v", findings)
	}
	for i := range want {
		findings[i].digest = want[i].digest
		if findings[i] != want[i] {
			t.Errorf("finding %d: got %+v want %+v", i, findings[i], want[i])
		}
	}
}

func TestDetectPrivateKeysDeniesObjectsOverTheBounds(t *testing.T) {
	k := keyFixtures(t)[0]
	cases := map[string]struct {
		cfg   func(*Config)
		value string
	}{
		"object-too-large":     {cfg: func(c *Config) { c.PrivateKeys.MaxObjectBytes = 1024 }, value: k.text},
		"over-the-work-budget": {cfg: func(c *Config) { c.PrivateKeys.WorkPerByte = 4 }, value: strings.Repeat(b64(b64(k.text))+" ", 300)},
		"nested-too-deep":      {cfg: func(c *Config) { c.PrivateKeys.MaxDecodeDepth = 2 }, value: b64(b64(b64(k.text)))},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.cfg(cfg)
			_, err := detect(t, keyLocations[0].build(tc.value), "Pod", cfg)
			var limit *KeyLimitError
			if !errors.As(err, &limit) {
				t.Fatalf("want a *KeyLimitError, got %v", err)
			}
			assertNoKeyMaterial(t, k.body, err.Error())
		})
	}
}

func TestDetectPrivateKeysRejectsInvalidJSON(t *testing.T) {
	if _, err := DetectPrivateKeys([]byte(`{"a": "-----BEGIN`), "Pod", DefaultConfig()); err == nil {
		t.Fatal("want an error for truncated JSON")
	}
}

func TestKeyDenialMessageNamesFieldKindFingerprintAndRemedy(t *testing.T) {
	k := keyFixtures(t)[0]
	findings, err := detect(t, keyLocations[0].build(k.text), "Pod", DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	msg := KeyDenialMessage(RejectingKeys(findings))
	for _, want := range []string{"spec.containers[1].env[1].value", `container "agent"`, "env SIGNING_KEY", KindRSAPKCS1, k.fingerprint(), "Secret", "secretKeyRef", "projected ServiceAccount token"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if !IsFingerprint(findings[0].Fingerprint) {
		t.Errorf("fingerprint %q does not have the configured form", findings[0].Fingerprint)
	}
}

// TestDetectPrivateKeysLowercaseHeaderIsTheOnlyTrigger covers keys whose only trigger
// is a lower-case header: no PEM dashes and no base64 run long enough to count.
func TestDetectPrivateKeysLowercaseHeaderIsTheOnlyTrigger(t *testing.T) {
	var putty keyFixture
	for _, k := range keyFixtures(t) {
		if k.name == "putty" {
			putty = k
		}
	}
	// PuTTY's public lines rewrapped shorter than minWrapLine, so that no base64 run,
	// wrapped or not, reaches minBase64Run.
	var short []string
	for _, l := range strings.Split(lowercaseHeaders(putty.text), "\n") {
		if len(l) == 64 || strings.HasPrefix(l, "AAAA") {
			short = append(short, wrap(l, minWrapLine-4))
			continue
		}
		short = append(short, l)
	}
	for name, text := range map[string]string{
		"putty-lowercase-short-lines": strings.Join(short, "\n"),
		"putty-lowercase-one-line":    strings.ReplaceAll(strings.Join(short, "\n"), "\n", " "),
	} {
		t.Run(name, func(t *testing.T) {
			if hasBase64Run([]byte(text)) {
				t.Fatalf("case has a base64 run: %q", text)
			}
			findings, err := detect(t, keyLocations[0].build(text), "Pod", DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if len(findings) != 1 || findings[0].Kind != KindPuTTY || findings[0].Fingerprint != putty.fingerprint() {
				t.Fatalf("want the PuTTY key, got %+v", findings)
			}
		})
	}
}

// TestDetectPrivateKeysCertificateBundleHidesNoKey checks that a recognised block of
// public material is skipped over its own span only: a key anywhere else in the same
// value is still found.
func TestDetectPrivateKeysCertificateBundleHidesNoKey(t *testing.T) {
	fx := keyFixtures(t)
	rsa := fx[0]
	bundle := strings.Repeat(publicMaterial(t)["certificate"], 3)
	headerless := base64.StdEncoding.EncodeToString(rsa.material)
	for _, c := range []struct {
		name, value string
	}{
		{"key-between-certificates", bundle + rsa.text + bundle},
		{"base64-key-after-bundle", bundle + b64(rsa.text)},
		{"base64-key-before-bundle", b64(rsa.text) + "\n" + bundle},
		{"base64-key-between-certificates", bundle + "\n" + wrap(b64(rsa.text), 64) + "\n" + bundle},
		{"headerless-der-after-bundle", bundle + headerless},
		{"base64-key-in-unrecognised-block", bundle + "-----BEGIN BUNDLE PART-----\n" + wrap(b64(rsa.text), 64) + "\n-----END BUNDLE PART-----\n"},
		{"base64-key-in-certificate-with-other-end", "-----BEGIN CERTIFICATE-----\n" + wrap(b64(rsa.text), 64) + "\n-----END BUNDLE-----\n" + bundle},
		{"percent-key-after-bundle", bundle + url.QueryEscape(rsa.text)},
		{"key-after-bundle-on-one-line", strings.ReplaceAll(bundle+rsa.text, "\n", "")},
		{"key-between-certificates-on-one-line", strings.ReplaceAll(bundle+rsa.text+bundle, "\n", "")},
	} {
		for _, enc := range []string{"literal", "escaped-newlines"} {
			t.Run(c.name+"/"+enc, func(t *testing.T) {
				value := c.value
				if enc == "escaped-newlines" {
					value = strings.ReplaceAll(value, "\n", `\n`)
				}
				findings, err := detect(t, keyLocations[0].build(value), "Pod", DefaultConfig())
				if err != nil {
					t.Fatal(err)
				}
				if len(findings) != 1 || findings[0].Fingerprint != rsa.fingerprint() {
					t.Fatalf("want the RSA key, got %+v", findings)
				}
			})
		}
	}
}

// jsonStringEscaping quotes s as a JSON string, writing the bytes esc picks as \uXXXX
// escapes, as any JSON encoder may.
func jsonStringEscaping(s string, esc func(c byte) bool) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case esc(c) || c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// shortLines rewraps the lines of text to 40 characters, shorter than a base64 run.
func shortLines(text string) string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		lines = append(lines, wrap(l, 40))
	}
	return strings.Join(lines, "\n")
}

func escapeBytes(set string) func(byte) bool {
	return func(c byte) bool { return strings.IndexByte(set, c) >= 0 }
}

// TestDetectPrivateKeysSeesThroughUnicodeEscapes checks that \uXXXX escapes of the
// characters the cheap filters look for (a PEM marker's dashes, "kty") hide no key,
// and reveal none where there is none.
func TestDetectPrivateKeysSeesThroughUnicodeEscapes(t *testing.T) {
	fx := map[string]keyFixture{}
	for _, k := range keyFixtures(t) {
		fx[k.name] = k
	}
	public := publicMaterial(t)
	everyByte := func(byte) bool { return true }
	const placeholder = "VALUE-PLACEHOLDER"
	// inEnv places an already quoted JSON string as an env value.
	inEnv := func(t *testing.T, quoted string) []byte {
		raw, err := json.Marshal(keyLocations[0].build(placeholder))
		if err != nil {
			t.Fatal(err)
		}
		return []byte(strings.Replace(string(raw), `"`+placeholder+`"`, quoted, 1))
	}
	for _, c := range []struct {
		name  string
		raw   func(t *testing.T) []byte
		field string
		key   string // fixture name; "" for an object that must be allowed
	}{
		{name: "pem-dashes-short-lines", key: "rsa-pkcs1", field: keyLocations[0].field,
			raw: func(t *testing.T) []byte {
				return inEnv(t, jsonStringEscaping(shortLines(fx["rsa-pkcs1"].text), escapeBytes("-")))
			}},
		{name: "pem-dashes-and-letters-of-the-label", key: "rsa-pkcs1", field: keyLocations[0].field,
			raw: func(t *testing.T) []byte {
				return inEnv(t, jsonStringEscaping(fx["rsa-pkcs1"].text, escapeBytes("-BEGINPRVATKY")))
			}},
		{name: "pem-every-byte", key: "rsa-pkcs1", field: keyLocations[0].field,
			raw: func(t *testing.T) []byte { return inEnv(t, jsonStringEscaping(fx["rsa-pkcs1"].text, everyByte)) }},
		{name: "age-dashes-and-digits", key: "age", field: keyLocations[0].field,
			raw: func(t *testing.T) []byte {
				return inEnv(t, jsonStringEscaping(fx["age"].text, escapeBytes("-0123456789")))
			}},
		{name: "putty-every-byte", key: "putty", field: keyLocations[0].field,
			raw: func(t *testing.T) []byte { return inEnv(t, jsonStringEscaping(fx["putty"].text, everyByte)) }},
		{name: "jwk-text-kty", key: "jwk-ec", field: keyLocations[0].field,
			raw: func(t *testing.T) []byte { return inEnv(t, jsonStringEscaping(fx["jwk-ec"].text, escapeBytes("kty"))) }},
		{name: "jwk-member-names", key: "jwk-ec", field: "spec.signing.d",
			raw: func(t *testing.T) []byte {
				raw := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"signing":` + fx["jwk-ec"].text + `}}`
				return []byte(strings.NewReplacer(`"kty"`, `"\u006bty"`, `"d"`, `"\u0064"`).Replace(raw))
			}},
		{name: "certificate-dashes-allowed",
			raw: func(t *testing.T) []byte {
				return inEnv(t, jsonStringEscaping(public["certificate"], escapeBytes("-")))
			}},
		{name: "html-escapes-in-clean-pod-allowed",
			raw: func(t *testing.T) []byte {
				return inEnv(t, jsonStringEscaping("<script>alert('not a key')</script> && echo done > /tmp/out", escapeBytes("<>&")))
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw := c.raw(t)
			// Each key case must hide every trigger: no other pass may find it.
			if c.key != "" && mayHoldKey(raw) {
				t.Fatalf("case shows a trigger in its raw bytes")
			}
			findings, err := DetectPrivateKeys(raw, "Pod", DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if c.key == "" {
				if len(findings) != 0 {
					t.Fatalf("want no finding, got %+v", findings)
				}
				return
			}
			k := fx[c.key]
			if len(findings) != 1 || findings[0].Field != c.field || findings[0].Kind != k.kind || findings[0].Fingerprint != k.fingerprint() {
				t.Fatalf("want the %s key at %s, got %+v", c.key, c.field, findings)
			}
			assertNoKeyMaterial(t, k.body, fmt.Sprint(findings), KeyDenialMessage(findings))
		})
	}
}

// TestDetectPrivateKeysBoundsWorkOnJSONInText checks that text built to make the search
// for JWKs in it quadratic is denied over the bounds instead, and that many small
// objects, each walked once, cost work linear in the text whatever the verdict.
func TestDetectPrivateKeysBoundsWorkOnJSONInText(t *testing.T) {
	for _, c := range []struct {
		name, value string
		mayPass     bool
	}{
		{"unclosed-objects", strings.Repeat(`{"kty" `, 20000), false},
		{"unclosed-objects-escaped-quotes", strings.Repeat(`{\"kty\" `, 20000), false},
		{"objects-that-fail-late", strings.Repeat(`{\"kty\":1,`, 20000), false},
		{"many-objects", strings.Repeat(`{"kty":"EC","d":"x"} `, 5000), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			raw, err := json.Marshal(keyLocations[0].build("# keys\n" + c.value))
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			findings, work, err := detectPrivateKeys(nil, raw, "Pod", cfg)
			var limit *KeyLimitError
			if !errors.As(err, &limit) && !(c.mayPass && err == nil && len(findings) == 0) {
				t.Fatalf("want a limit error, got %v and %d findings", err, len(findings))
			}
			if bound := workBudget(len(raw), cfg.PrivateKeys.WorkPerByte) + 2*len(raw); work > bound {
				t.Fatalf("work %d over the bound %d", work, bound)
			}
		})
	}
}

// TestDetectPrivateKeysPuTTYOnOneLineBlobStartingWithDigits checks an encrypted PuTTY
// key whose private blob starts with digits, written on one line: the digits run on
// from the line count, and the blob must still be found whole.
func TestDetectPrivateKeysPuTTYOnOneLineBlobStartingWithDigits(t *testing.T) {
	blob := make([]byte, 48)
	for i := range blob {
		blob[i] = byte(0xd7 + 31*i)
	}
	b64Blob := base64.StdEncoding.EncodeToString(blob)
	if b64Blob[0] < '0' || b64Blob[0] > '9' {
		t.Fatalf("blob must start with a digit: %q", b64Blob[:4])
	}
	text := "PuTTY-User-Key-File-2: ssh-ed25519\nEncryption: aes256-cbc\nComment: agent\nPublic-Lines: 2\n" +
		"AAAAC3NzaC1lZDI1NTE5AAAAIGw0eXh1b3d0a2V5Zm9yYWdlbnRzYW5kYm94c\n2lnbmluZw==\n" +
		"Private-Lines: 1\n" + b64Blob + "\nPrivate-MAC: " + strings.Repeat("ab", 20) + "\n"
	want := keyFingerprint(sha256.Sum256(blob))
	for name, value := range map[string]string{
		"multi-line": text,
		"one-line":   strings.ReplaceAll(text, "\n", ""),
	} {
		t.Run(name, func(t *testing.T) {
			findings, err := detect(t, keyLocations[0].build(value), "Pod", DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if len(findings) != 1 || findings[0].Kind != KindPuTTYEncrypted || findings[0].Fingerprint != want {
				t.Fatalf("want the encrypted PuTTY key %s, got %+v", want, findings)
			}
		})
	}
}

// TestDetectPrivateKeysPuTTYWithDecoyHeaders checks that a second header or an
// "Encryption: none" in a comment does not hide an encrypted PuTTY key: a file runs from
// its first header to its private lines, and every reading its headers allow is tried.
func TestDetectPrivateKeysPuTTYWithDecoyHeaders(t *testing.T) {
	blob := make([]byte, 48)
	for i := range blob {
		blob[i] = byte(0x5d + 17*i)
	}
	text := "PuTTY-User-Key-File-2: ssh-ed25519\nEncryption: aes256-cbc\nComment: PuTTY-User-Key-File-3: x, Encryption: none\nPublic-Lines: 1\n" +
		"AAAAC3NzaC1lZDI1NTE5AAAAIGw0eXh1b3d0a2V5Zm9yYWdlbnRzYW5kYm94c2lnbmluZw==\n" +
		"Private-Lines: 1\n" + base64.StdEncoding.EncodeToString(blob) + "\nPrivate-MAC: " + strings.Repeat("ab", 20) + "\n"
	findings, err := detect(t, keyLocations[0].build(text), "Pod", DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if want := keyFingerprint(sha256.Sum256(blob)); len(findings) != 1 || findings[0].Kind != KindPuTTYEncrypted || findings[0].Fingerprint != want {
		t.Fatalf("want the encrypted PuTTY key %s, got %+v", want, findings)
	}
}

// The filter for short string values agrees with the full one on text built from the
// pieces of every trigger.
func TestMayHoldKeyShortAgreesWithMayHoldKey(t *testing.T) {
	pieces := []string{"-", "--", "k", "t", "y", "kty", "%", "%2D", "2D", "age", "AGE",
		"-secret-key-", "putty", "PuTTY", "-user-key-file-", "a", "Z", " ", "\\n", "9", "/"}
	seed := uint64(1)
	next := func(n int) int {
		seed = seed*6364136223846793005 + 1442695040888963407
		return int(seed>>33) % n
	}
	for range 200000 {
		var b []byte
		for len(b) < minBase64Run+8 {
			if got, want := mayHoldKeyShort(b), mayHoldKey(b); got != want {
				t.Fatalf("mayHoldKeyShort(%q) = %v, mayHoldKey = %v", b, got, want)
			}
			b = append(b, pieces[next(len(pieces))]...)
		}
	}
}
