package webhook

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestMutatingWebhookWarnsAboutEnvFromThatCouldSetAForbiddenName: through the real API
// server, a ConfigMap in envFrom without a prefix draws a warning naming the container
// and the ConfigMap, and a Secret whose prefix no forbidden name starts with draws none.
func TestMutatingWebhookWarnsAboutEnvFromThatCouldSetAForbiddenName(t *testing.T) {
	ns := mutatingTestNamespace(t, true)
	c, rec := warningClient(t)
	pod := openShellSandboxPod(ns, "sandbox-envfrom")
	pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vertex-settings"}}},
		{Prefix: "APP_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-secrets"}}},
	}
	rec.Take()
	if err := c.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	assertInjected(t, pod, "false")
	warnings := strings.Join(rec.Take(), "\n")
	for _, want := range []string{`spec.containers[0].envFrom[0]`, `container "agent"`, `ConfigMap "vertex-settings"`, "no prefix", "CLAUDE_CODE_USE_VERTEX"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings do not mention %s:\n%s", want, warnings)
		}
	}
	if strings.Contains(warnings, "app-secrets") {
		t.Errorf("a source with prefix APP_ drew a warning:\n%s", warnings)
	}
	if len(pod.Spec.Containers[0].EnvFrom) != 2 {
		t.Errorf("envFrom changed: %+v", pod.Spec.Containers[0].EnvFrom)
	}
}
