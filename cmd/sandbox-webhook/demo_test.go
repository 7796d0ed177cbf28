package main

import (
	"github.com/sandbox-webhook/sandbox-webhook/internal/doctor"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sandbox-webhook/sandbox-webhook/examples"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

func TestColumnsAlignsCellsAndTrimsTrailingSpace(t *testing.T) {
	got := columns([][]string{
		{"", "a/one", "b/two"},
		{"label", "x", "y"},
		{"longer label", "value", ""},
		{"short"},
	})
	want := []string{
		"              a/one  b/two",
		"label         x      y",
		"longer label  value",
		"short",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("columns:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if columns(nil) == nil || len(columns(nil)) != 0 {
		t.Errorf("columns(nil) = %#v, want an empty list", columns(nil))
	}
}

func TestWrapWords(t *testing.T) {
	for _, tc := range []struct {
		text  string
		width int
		want  []string
	}{
		{"", 10, nil},
		{"one two three", 7, []string{"one two", "three"}},
		{"one  two\nthree", 100, []string{"one two three"}},
		{"averyveryverylongword and more", 8, []string{"averyveryverylongword", "and more"}},
	} {
		if got := wrapWords(tc.text, tc.width); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("wrapWords(%q, %d) = %q, want %q", tc.text, tc.width, got, tc.want)
		}
	}
}

func TestDemoObjectsComeFromTheExamples(t *testing.T) {
	cfg := policy.DefaultConfig()
	d, err := loadDemoObjects(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var gateways []string
	for _, g := range d.gateways {
		gateways = append(gateways, g.Kind+" "+g.Namespace+"/"+g.Name)
	}
	if want := []string{"ServiceAccount tenant-a/openshell-gateway", "ServiceAccount tenant-b/openshell-gateway"}; !reflect.DeepEqual(gateways, want) {
		t.Errorf("gateways %v, want %v", gateways, want)
	}
	if len(d.credentials["tenant-a"]) != 1 || len(d.credentials["tenant-b"]) != 0 {
		t.Errorf("credentials %v: want one in tenant-a and none in tenant-b", d.credentials)
	}
	if got := credentialText(d.credentials["tenant-a"], cfg); got != "Secret inference-credential (anthropic)" {
		t.Errorf("credential text %q", got)
	}
	for _, s := range d.credentials["tenant-a"] {
		c := policy.ClassifyInferenceCredentials([]corev1.Secret{secretWithData(s)}, cfg)
		if !c.Usable() {
			t.Errorf("the example credential is not usable: %+v", c)
		}
	}
	if podNames(d.pods) != "tenant-a/sandbox-a and tenant-b/sandbox-b" {
		t.Errorf("pods %s", podNames(d.pods))
	}
	for _, pod := range d.pods {
		in := &policy.InjectionPod{}
		in.Labels = pod.Labels
		if !policy.IsSandboxPod(in, cfg) || pod.Annotations["openshell.io/sandbox-id"] == "" || agentContainer(pod).Name != "agent" {
			t.Errorf("pod %s/%s is not shaped like a sandbox pod", pod.Namespace, pod.Name)
		}
	}
	placeholder := false
	for _, e := range d.keyPod.Spec.Containers[0].Env {
		placeholder = placeholder || e.Value == examples.KeyPlaceholder
	}
	if !placeholder {
		t.Errorf("examples/%s has no env value %s", examples.PodWithKey, examples.KeyPlaceholder)
	}
}

// secretWithData is s as the API server stores it: stringData moved into data.
func secretWithData(s *corev1.Secret) corev1.Secret {
	out := *s.DeepCopy()
	if out.Data == nil {
		out.Data = map[string][]byte{}
	}
	for k, v := range out.StringData {
		out.Data[k] = []byte(v)
	}
	out.StringData = nil
	return out
}

func demoInjectedPod(inference string) *corev1.Pod {
	exp := int64(3600)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "sandbox-a", Annotations: map[string]string{
			policy.AnnotationInjected: `{"tokenVolume":"openshell-sa-token","containers":["agent"],"gateway":"gw","inference":"` + inference + `","inferenceReason":"usable"}`,
		}},
		Spec: corev1.PodSpec{
			Volumes: []corev1.Volume{{Name: "openshell-sa-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "openshell-gateway", ExpirationSeconds: &exp, Path: "token"}}},
			}}}},
			Containers: []corev1.Container{
				{Name: "sidecar"},
				{
					Name: "agent", ImagePullPolicy: corev1.PullIfNotPresent,
					VolumeMounts: []corev1.VolumeMount{{Name: "openshell-sa-token", MountPath: "/var/run/secrets/openshell", ReadOnly: true}},
					Env: []corev1.EnvVar{
						{Name: "OPENSHELL_GATEWAY_SA_TOKEN_PATH", Value: "/var/run/secrets/openshell/token"},
						{Name: "OPENSHELL_GATEWAY_ENDPOINT", Value: "openshell-gateway.tenant-a.svc.cluster.local:8080"},
						{Name: "ACP_OPENSHELL_INFERENCE", Value: inference},
					},
				},
			},
		},
	}
}

func TestPodFactsReadTheInjection(t *testing.T) {
	cfg := policy.DefaultConfig()
	f := podFacts(demoInjectedPod("true"), cfg)
	want := map[string]string{
		"pod": f.pod, "tokenVolume": f.tokenVolume, "audience": f.audience, "expiration": f.expiration,
		"mount": f.mount, "tokenPath": f.tokenPath, "endpoint": f.endpoint, "inference": f.inference,
		"pullPolicy": f.pullPolicy + " (" + f.pullPolicyBy + ")", "annotation": f.annotation,
	}
	for k, v := range map[string]string{
		"pod": "tenant-a/sandbox-a", "tokenVolume": "openshell-sa-token", "audience": "openshell-gateway",
		"expiration": "3600s", "mount": "/var/run/secrets/openshell, read-only",
		"tokenPath": "/var/run/secrets/openshell/token", "endpoint": "openshell-gateway.tenant-a.svc.cluster.local:8080",
		"inference": "true", "pullPolicy": "IfNotPresent (the pod's own)",
		"annotation": "inference true (usable), containers agent",
	} {
		if want[k] != v {
			t.Errorf("%s = %q, want %q", k, want[k], v)
		}
	}
	if err := f.check(cfg, true); err != nil {
		t.Errorf("check: %v", err)
	}
	if err := f.check(cfg, false); err == nil || !strings.Contains(err.Error(), "ACP_OPENSHELL_INFERENCE=false (got true)") {
		t.Errorf("check with no credential: %v", err)
	}

	bare := podFacts(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: "p"}}, cfg)
	err := bare.check(cfg, false)
	if err == nil {
		t.Fatal("check passes a pod with no injection")
	}
	for _, want := range []string{"annotation sandbox-webhook.io/injected", "projected token volume", "token mount", "env OPENSHELL_GATEWAY_SA_TOKEN_PATH", "env OPENSHELL_GATEWAY_ENDPOINT", "env ACP_OPENSHELL_INFERENCE=false (got -)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("check of a bare pod: %v; want it to name %s", err, want)
		}
	}
}

func TestFactsTableIsSideBySide(t *testing.T) {
	cfg := policy.DefaultConfig()
	a, b := podFacts(demoInjectedPod("true"), cfg), podFacts(demoInjectedPod("false"), cfg)
	b.pod = "tenant-b/sandbox-b"
	a.credential, b.credential = "Secret c (anthropic)", "none"
	lines := columns(factsTable([]sandboxFacts{a, b}, cfg))
	header := lines[0]
	colA, colB := strings.Index(header, "tenant-a/sandbox-a"), strings.Index(header, "tenant-b/sandbox-b")
	if colA <= 0 || colB <= colA {
		t.Fatalf("header %q", header)
	}
	rows := map[string][2]string{}
	for _, line := range lines[1:] {
		label := strings.TrimSpace(line[:colA])
		rows[label] = [2]string{strings.TrimSpace(line[colA:colB]), strings.TrimSpace(line[colB:])}
	}
	for label, want := range map[string][2]string{
		"inference credential":            {"Secret c (anthropic)", "none"},
		"ACP_OPENSHELL_INFERENCE":         {"true", "false"},
		"audience, expiry":                {"openshell-gateway, 3600s", "openshell-gateway, 3600s"},
		"OPENSHELL_GATEWAY_SA_TOKEN_PATH": {"/var/run/secrets/openshell/token", "/var/run/secrets/openshell/token"},
		"sandbox-webhook.io/injected":     {"inference true (usable), containers agent", "inference false (usable), containers agent"},
	} {
		if rows[label] != want {
			t.Errorf("row %q = %q, want %q", label, rows[label], want)
		}
	}
}

func TestContainsKeyMaterial(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	fingerprint := "SHA256:" + hex.EncodeToString(sum[:8])
	if doctor.ContainsKeyMaterial("denied: spec.containers[0].env[0].value: EC private key (SEC1), "+fingerprint, der) {
		t.Error("a fingerprint counts as key material")
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	for _, leak := range []string{b64[20:36], hex.EncodeToString(der)[40:56], "-----BEGIN EC PRIVATE KEY-----"} {
		if !doctor.ContainsKeyMaterial("denied: "+leak, der) {
			t.Errorf("%d characters of the key are not found", len(leak))
		}
	}
}
