package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

func warningClient(t *testing.T) (client.Client, *envtestutil.WarningRecorder) {
	t.Helper()
	return cp.WarningClient(t)
}

func mutatingTestNamespace(t *testing.T, tenant bool) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mutate-" + rand.String(6)}}
	if tenant {
		ns.Labels = map[string]string{"sandbox-webhook.io/tenant": "true"}
	}
	if err := cp.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// openShellSandboxPod is shaped like the pods the agent-sandbox controller makes.
func openShellSandboxPod(ns, name string) *corev1.Pod {
	no := false
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels:      map[string]string{"agents.x-k8s.io/sandbox-name-hash": "5d41402abc4b2a76"},
			Annotations: map[string]string{"openshell.io/sandbox-id": "3f0c9a52-6c1e-4b7e-9d0a-2b9f1c7e4a10"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "agents.x-k8s.io/v1alpha1", Kind: "Sandbox", Name: name,
				UID: types.UID("0b8c2e4f-1d3a-4c5b-8e6f-" + rand.String(12)), Controller: &yes,
			}},
		},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{
				Name: "agent", Image: "example.invalid/openshell-agent:0.4.2",
				Env: []corev1.EnvVar{{Name: "HOME", Value: "/workspace"}},
			}},
		},
	}
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func assertInjected(t *testing.T, pod *corev1.Pod, wantInference string) {
	t.Helper()
	cfg := testConfig
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == cfg.Token.VolumeName {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.Projected == nil || vol.Projected.Sources[0].ServiceAccountToken == nil ||
		vol.Projected.Sources[0].ServiceAccountToken.Audience != cfg.Token.Audience {
		t.Fatalf("no projected token volume with audience %s: %+v", cfg.Token.Audience, pod.Spec.Volumes)
	}
	agent := pod.Spec.Containers[0]
	mounted := false
	for _, m := range agent.VolumeMounts {
		mounted = mounted || (m.Name == cfg.Token.VolumeName && m.MountPath == cfg.Token.MountPath && m.ReadOnly)
	}
	if !mounted {
		t.Fatalf("token not mounted read-only: %+v", agent.VolumeMounts)
	}
	want := map[string]string{
		cfg.Token.PathEnv:       cfg.Token.MountPath + "/" + cfg.Token.Path,
		cfg.Gateway.EndpointEnv: cfg.GatewayEndpoint(pod.Namespace),
		cfg.Inference.Env:       wantInference,
	}
	for k, v := range want {
		if got, ok := envValue(agent, k); !ok || got != v {
			t.Errorf("env %s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	var summary policy.InjectionSummary
	if err := json.Unmarshal([]byte(pod.Annotations[policy.AnnotationInjected]), &summary); err != nil {
		t.Fatalf("annotation %s: %v", policy.AnnotationInjected, err)
	}
	if summary.Inference != wantInference {
		t.Errorf("annotation says inference %q, want %q", summary.Inference, wantInference)
	}
}

func assertUntouched(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if _, ok := pod.Annotations[policy.AnnotationInjected]; ok {
		t.Errorf("pod was injected: %v", pod.Annotations)
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == testConfig.Token.VolumeName {
			t.Errorf("pod got the token volume")
		}
	}
	if len(pod.Spec.Containers[0].Env) != 1 {
		t.Errorf("env changed: %+v", pod.Spec.Containers[0].Env)
	}
}

// eventuallyInference dry-runs pods until the webhook's cache shows the expected flag,
// then returns the warnings of that last request.
func eventuallyInference(t *testing.T, ns, want string) []string {
	t.Helper()
	c, rec := warningClient(t)
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		rec.Take()
		pod := openShellSandboxPod(ns, "probe-"+rand.String(5))
		if err := c.Create(context.Background(), pod, client.DryRunAll); err != nil {
			t.Fatalf("dry-run create: %v", err)
		}
		got, _ = envValue(pod.Spec.Containers[0], testConfig.Inference.Env)
		if got == want {
			return rec.Take()
		}
	}
	t.Fatalf("inference flag stayed %q, want %q", got, want)
	return nil
}

func credentialSecret(ns, name, provider string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{testConfig.Inference.ProviderLabel: provider}},
		StringData: data,
	}
}

func TestMutatingWebhookInjectsSandboxPodInTenantNamespace(t *testing.T) {
	ctx := context.Background()
	ns := mutatingTestNamespace(t, true)
	pod := openShellSandboxPod(ns, "sandbox-a")
	if err := cp.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	stored := &corev1.Pod{}
	if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(pod), stored); err != nil {
		t.Fatal(err)
	}
	assertInjected(t, stored, "false")
	if *stored.Spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken changed")
	}
}

func TestMutatingWebhookUsableCredentialFlipsInferenceForTheNextPod(t *testing.T) {
	ctx := context.Background()
	ns := mutatingTestNamespace(t, true)
	eventuallyInference(t, ns, "false")
	if err := cp.Client.Create(ctx, credentialSecret(ns, "anthropic", "anthropic", map[string]string{"api-key": "placeholder-api-key-value"})); err != nil {
		t.Fatal(err)
	}
	eventuallyInference(t, ns, "true")
	pod := openShellSandboxPod(ns, "sandbox-b")
	if err := cp.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	stored := &corev1.Pod{}
	if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(pod), stored); err != nil {
		t.Fatal(err)
	}
	assertInjected(t, stored, "true")
}

func TestMutatingWebhookAuthorizedUserCredentialWarnsAndStaysFalse(t *testing.T) {
	ctx := context.Background()
	ns := mutatingTestNamespace(t, true)
	au := `{"type":"authorized_user","client_id":"demo","refresh_token":"placeholder-refresh-value"}`
	if err := cp.Client.Create(ctx, credentialSecret(ns, "vertex", "google-vertex-ai", map[string]string{"credentials.json": au})); err != nil {
		t.Fatal(err)
	}
	c, rec := warningClient(t)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rec.Take()
		pod := openShellSandboxPod(ns, "sandbox-"+rand.String(5))
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		assertInjected(t, pod, "false")
		warnings := strings.Join(rec.Take(), "\n")
		if strings.Contains(warnings, "authorized_user") {
			if strings.Contains(warnings, "placeholder-refresh-value") {
				t.Fatalf("warning echoes the credential: %s", warnings)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no authorized_user warning; got %q", warnings)
		}
	}
}

func TestMutatingWebhookLeavesOtherPodsAlone(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		tenant bool
		labels map[string]string
	}{
		{"sandbox pod in a non-tenant namespace", false, nil},
		{"non-sandbox pod in a tenant namespace", true, map[string]string{"app": "web"}},
		{"sandbox pod that opts out", true, map[string]string{"agents.x-k8s.io/sandbox-name-hash": "x", "sandbox-webhook.io/inject": "false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := mutatingTestNamespace(t, tt.tenant)
			pod := openShellSandboxPod(ns, "pod-"+rand.String(5))
			if tt.labels != nil {
				pod.Labels = tt.labels
			}
			if err := cp.Client.Create(ctx, pod); err != nil {
				t.Fatal(err)
			}
			stored := &corev1.Pod{}
			if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(pod), stored); err != nil {
				t.Fatal(err)
			}
			assertUntouched(t, stored)
		})
	}
}

func TestMutatingWebhookServerSideDryRunReturnsTheMutatedPod(t *testing.T) {
	ctx := context.Background()
	ns := mutatingTestNamespace(t, true)
	pod := openShellSandboxPod(ns, "dry-run")
	if err := cp.Client.Create(ctx, pod, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	assertInjected(t, pod, "false")
	err := cp.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
	if err == nil {
		t.Fatal("dry-run stored the pod")
	}
	_ = fmt.Sprint(err)
}
