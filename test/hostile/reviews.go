// Package hostile holds requests written to take an admission webhook down, and the
// suite that sends them to `sandbox-webhook serve` over HTTPS. The generators are
// shared with the handlers' own tests.
package hostile

import (
	"bytes"
	"fmt"
	"strings"
)

// Envelope starts an AdmissionReview whose next member is whatever follows.
const Envelope = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","x":`

// SandboxMetadata is the metadata of a sandbox pod in the tenant namespace "team-a".
const SandboxMetadata = `"metadata":{"namespace":"team-a","labels":{"agents.x-k8s.io/sandbox-name-hash":"h"}}`

// PodReview is the AdmissionReview of a pod CREATE in "team-a" with the pod's JSON.
func PodReview(podJSON string) []byte {
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"hostile","kind":{"group":"","version":"v1","kind":"Pod"},` +
		`"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"team-a","operation":"CREATE","object":` + podJSON + `}}`)
}

// SandboxPodReview is the review of a sandbox pod whose spec is spec.
func SandboxPodReview(spec string) []byte {
	return PodReview(`{` + SandboxMetadata + `,"spec":` + spec + `}`)
}

// ConfigMapReview is the AdmissionReview of a ConfigMap CREATE in "team-a" with one
// value, given as JSON string content (escaped as needed).
func ConfigMapReview(valueJSON string) []byte {
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"hostile","kind":{"group":"","version":"v1","kind":"ConfigMap"},` +
		`"resource":{"group":"","version":"v1","resource":"configmaps"},"namespace":"team-a","operation":"CREATE","object":` +
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"team-a"},"data":{"v":"` + valueJSON + `"}}}}`)
}

// Review is one hostile request and what a correct webhook does with it.
type Review struct {
	Name string
	Body []byte
	// Pod: the body is a pod the mutating webhook decides on (it may admit it).
	Pod bool
	// ConfigMap: the body is a well-formed ConfigMap review (either webhook may admit it).
	ConfigMap bool
}

// Nesting is size bytes of an envelope followed by unit repeated: "[" or `{"a":`.
func Nesting(size int, unit string) []byte {
	return []byte(Envelope + strings.Repeat(unit, (size-len(Envelope))/len(unit)))
}

// list joins n items made by item with commas.
func list(n int, item func(i int) string) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(item(i))
	}
	return b.String()
}

// Reviews are the named hostile requests: deep nesting of both kinds at 1 to 7 MB, a
// huge env value of braces, floods of env vars, containers and labels, invalid UTF-8,
// duplicate names, not JSON, a string that never ends, and floods of key lookalikes of
// about 1 MB in a ConfigMap.
func Reviews() []Review {
	var out []Review
	for _, mb := range []int{1, 3, 7} {
		out = append(out,
			Review{Name: fmt.Sprintf("%d MB of [", mb), Body: Nesting(mb<<20, "[")},
			Review{Name: fmt.Sprintf(`%d MB of {"a":`, mb), Body: Nesting(mb<<20, `{"a":`)})
	}
	out = append(out,
		Review{Name: "3M braces in an env value", Pod: true,
			Body: SandboxPodReview(`{"containers":[{"name":"agent","env":[{"name":"X","value":"` + strings.Repeat("{", 3_000_000) + `"}]}]}`)},
		Review{Name: "20,000 env vars", Pod: true,
			Body: SandboxPodReview(`{"containers":[{"name":"agent","env":[` + list(20000, func(i int) string { return fmt.Sprintf(`{"name":"E%d","value":"v"}`, i) }) + `]}]}`)},
		Review{Name: "100,000 empty containers", Pod: true,
			Body: SandboxPodReview(`{"containers":[` + list(100000, func(int) string { return "{}" }) + `]}`)},
		Review{Name: "1M empty env vars", Pod: true,
			Body: SandboxPodReview(`{"containers":[{"name":"a","env":[` + list(1000000, func(int) string { return "{}" }) + `]}]}`)},
		Review{Name: "300,000 labels", Pod: true,
			Body: PodReview(`{"metadata":{"labels":{` + list(300000, func(i int) string { return fmt.Sprintf(`"l%d":""`, i) }) + `}},"spec":{"containers":[{"name":"a"}]}}`)},
		Review{Name: "invalid UTF-8",
			Body: SandboxPodReview(`{"containers":[{"name":"` + strings.Repeat("\xff", 1<<20) + `"}]}`)},
		Review{Name: "duplicate names",
			Body: PodReview(`{` + SandboxMetadata + `,"spec":{"containers":[{"name":"a"}]},"spec":{}}`)},
		Review{Name: "not JSON", Body: bytes.Repeat([]byte("not json "), 100000)},
		Review{Name: "a string that never ends", Body: []byte(Envelope + `"` + strings.Repeat("a", 5<<20))},
	)
	for _, f := range KeyFloods() {
		out = append(out, Review{Name: f.Name + " flood", Body: ConfigMapReview(f.Value), ConfigMap: true})
	}
	return out
}

// KeyFlood is a ConfigMap value of about 1 MB that makes a naive key scanner search,
// decode or compare over and over.
type KeyFlood struct {
	Name  string
	Value string // JSON string content
}

// KeyFloods are the key-lookalike floods.
func KeyFloods() []KeyFlood {
	const size = 1 << 20
	fill := func(unit string) string { return strings.Repeat(unit, size/len(unit)) }
	return []KeyFlood{
		{"PuTTY headers", strings.Repeat(`PuTTY-User-Key-File-3: ssh-ed25519\n`, 4000) + fill("x")[:900<<10]},
		{"JWKs", fill(`{\"kty\":\"EC\",\"d\":\"AAAA\"},`)},
		{"age keys", fill(`AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ `)},
		{"PEM headers", fill(`-----BEGIN RSA PRIVATE KEY-----\n`)},
		{"base64 runs", fill(strings.Repeat("QUJD", 20) + `\n`)},
	}
}
