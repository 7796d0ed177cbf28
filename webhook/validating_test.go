package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

func keyRequest(op admissionv1.Operation, kind, resource, sub string, obj, old map[string]any) admission.Request {
	raw := func(o map[string]any) runtime.RawExtension {
		if o == nil {
			return runtime.RawExtension{}
		}
		b, _ := json.Marshal(o)
		return runtime.RawExtension{Raw: b}
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: op, Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: resource}, SubResource: sub,
		Object: raw(obj), OldObject: raw(old),
	}}
}

func inNamespace(req admission.Request, ns string) admission.Request {
	req.Namespace = ns
	return req
}

func podWithEnv(value string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"}, "spec": map[string]any{"containers": []any{
		map[string]any{"name": "agent", "image": "a", "env": []any{map[string]any{"name": "K", "value": value}}},
	}}}
}

// podWithEnvs is a pod whose container has one env var per value, K0, K1, ...
func podWithEnvs(values ...string) map[string]any {
	var env []any
	for i, v := range values {
		env = append(env, map[string]any{"name": fmt.Sprintf("K%d", i), "value": v})
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "p"}, "spec": map[string]any{"containers": []any{
		map[string]any{"name": "agent", "image": "a", "env": env},
	}}}
}

func tenantsExcluding(ns string) *policy.Config {
	cfg := policy.DefaultConfig()
	cfg.Tenants.ExcludedNamespaces = []string{ns}
	return cfg
}

func keysExcluding(ns string) *policy.Config {
	cfg := policy.DefaultConfig()
	cfg.PrivateKeys.ExcludedNamespaces = []string{ns}
	return cfg
}

func TestKeyValidatorDecisions(t *testing.T) {
	keyPEM, body, fp := envtestKey(t)
	small := policy.DefaultConfig()
	small.PrivateKeys.MaxObjectBytes = 1024
	cases := []struct {
		name      string
		cfg       *policy.Config
		req       admission.Request
		allowed   bool
		inMessage []string
		audit     bool
	}{
		{name: "pod-create-with-key", req: keyRequest(admissionv1.Create, "Pod", "pods", "", podWithEnv(keyPEM), nil),
			inMessage: []string{"spec.containers[0].env[0].value", fp}, audit: true},
		{name: "ephemeral-containers-with-key", req: keyRequest(admissionv1.Update, "Pod", "pods", "ephemeralcontainers", podWithEnv(keyPEM), podWithEnv("x")),
			inMessage: []string{fp}, audit: true},
		{name: "secret-with-key", req: keyRequest(admissionv1.Create, "Secret", "secrets", "", map[string]any{"kind": "Secret", "stringData": map[string]any{"k": keyPEM}}, nil), allowed: true},
		{name: "clean-pod", req: keyRequest(admissionv1.Create, "Pod", "pods", "", podWithEnv("hello"), nil), allowed: true},
		{name: "update-keeping-existing-key", req: keyRequest(admissionv1.Update, "Pod", "pods", "", podWithEnv(keyPEM), podWithEnv(keyPEM)), allowed: true, audit: true},
		{name: "over-bounds", cfg: small, req: keyRequest(admissionv1.Create, "Pod", "pods", "", podWithEnv(keyPEM+strings.Repeat(" ", 1024)), nil),
			inMessage: []string{"not inspected", "privateKeys.maxObjectBytes"}, audit: true},
		{name: "update-moving-the-key-to-another-field", req: keyRequest(admissionv1.Update, "Pod", "pods", "", podWithEnvs("other", keyPEM), podWithEnvs(keyPEM, "other")),
			inMessage: []string{fp, "spec.containers[0].env[1].value"}, audit: true},
		{name: "update-copying-the-key-to-another-field", req: keyRequest(admissionv1.Update, "Pod", "pods", "", podWithEnvs(keyPEM, keyPEM), podWithEnvs(keyPEM, "other")),
			inMessage: []string{fp, "spec.containers[0].env[1].value"}, audit: true},
		{name: "tenants-excluded-namespace-is-still-checked", cfg: tenantsExcluding("team-x"),
			req: inNamespace(keyRequest(admissionv1.Create, "Pod", "pods", "", podWithEnv(keyPEM), nil), "team-x"), inMessage: []string{fp}, audit: true},
		{name: "key-validation-excluded-namespace", cfg: keysExcluding("legacy"),
			req: inNamespace(keyRequest(admissionv1.Create, "Pod", "pods", "", podWithEnv(keyPEM), nil), "legacy"), allowed: true},
		{name: "excluded-namespace-is-never-touched", req: inNamespace(keyRequest(admissionv1.Create, "Pod", "pods", "", podWithEnv(keyPEM), nil), "kube-system"), allowed: true},
		{name: "tenant-namespace-is-checked", req: inNamespace(keyRequest(admissionv1.Create, "Pod", "pods", "", podWithEnv(keyPEM), nil), "tenant-a"),
			inMessage: []string{fp}, audit: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg == nil {
				cfg = policy.DefaultConfig()
			}
			resp := newTestKeyValidator(t, cfg, prometheus.NewRegistry()).Handle(context.Background(), tc.req)
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if !tc.allowed && resp.Result.Code != 403 {
				t.Errorf("code %d, want 403", resp.Result.Code)
			}
			var msg string
			if resp.Result != nil {
				msg = resp.Result.Message
			}
			for _, want := range tc.inMessage {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			if _, ok := resp.AuditAnnotations[AuditKeyFindings]; ok != tc.audit {
				t.Errorf("audit annotation present = %v, want %v", ok, tc.audit)
			}
			all := msg + strings.Join(resp.Warnings, " ")
			for _, v := range resp.AuditAnnotations {
				all += v
			}
			assertNoKeyIn(t, body, all)
		})
	}
}

func TestKeyValidatorCountsRejectionsByKindAndResource(t *testing.T) {
	keyPEM, _, _ := envtestKey(t)
	v := newTestKeyValidator(t, policy.DefaultConfig(), prometheus.NewRegistry())
	counter := v.rejections.WithLabelValues("EC private key (PKCS#8)", "configmaps")
	value := func(c prometheus.Counter) float64 {
		var m dto.Metric
		if err := c.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	before := value(counter)
	cm := map[string]any{"kind": "ConfigMap", "metadata": map[string]any{"name": "c"}, "data": map[string]any{"k": keyPEM}}
	resp := v.Handle(context.Background(), keyRequest(admissionv1.Create, "ConfigMap", "configmaps", "", cm, nil))
	if resp.Allowed {
		t.Fatal("want a denial")
	}
	if got := value(counter) - before; got != 1 {
		t.Fatalf("counter moved by %v, want 1", got)
	}
}

func newTestKeyValidator(t *testing.T, cfg *policy.Config, reg prometheus.Registerer) *KeyValidator {
	t.Helper()
	v, err := NewKeyValidator(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
