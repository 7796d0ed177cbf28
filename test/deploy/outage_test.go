package deploy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestWhatAnUnreachableWebhookRefuses installs the base's Service and webhook
// configurations with no webhook behind them, as after a failed rollout, and has the API
// server admit (dry run) a table of objects: what the README's troubleshooting section
// says is refused, with the error it quotes, and nothing else.
func TestWhatAnUnreachableWebhookRefuses(t *testing.T) {
	objs := build(t, "base")
	ensureNamespaces(t, objs)
	for _, o := range objs {
		switch o.GetKind() {
		case "Service", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			createForReal(t, o.DeepCopy())
		}
	}
	ctx := context.Background()
	tenant := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "outage-" + rand.String(6), Labels: map[string]string{"sandbox-webhook.io/tenant": "true"}}}
	other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "outage-" + rand.String(6)}}
	for _, ns := range []*corev1.Namespace{tenant, other} {
		if err := cp.Client.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(ns string, labels map[string]string) client.Object {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p-" + rand.String(5), Labels: labels}}
		// Restricted, as the webhook's own namespace requires.
		no, yes := false, true
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: &yes, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
		p.Spec.Containers = []corev1.Container{{Name: "agent", Image: "agent:dev", SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}}}
		return p
	}
	refusedBy := func(webhook, path string) string {
		return fmt.Sprintf(`Internal error occurred: failed calling webhook %q: failed to call webhook: Post "https://sandbox-webhook.sandbox-webhook-system.svc:443%s?timeout=5s": `, webhook, path)
	}
	const hash, inject = "agents.x-k8s.io/sandbox-name-hash", "sandbox-webhook.io/inject"
	sandbox := refusedBy(sandboxPodsWebhook, "/mutate-pods")
	optedIn := refusedBy(optedInPodsWebhook, "/mutate-pods")
	validation := refusedBy(privateKeysWebhook, "/validate-private-keys")
	cm := func(ns string) client.Object {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c-" + rand.String(5)}}
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant.Name, Name: "s"}, StringData: map[string]string{"k": "v"}}
	sb := &unstructured.Unstructured{}
	sb.SetAPIVersion("agents.x-k8s.io/v1alpha1")
	sb.SetKind("Sandbox")
	sb.SetNamespace(other.Name)
	sb.SetName("sb")
	sb.Object["spec"] = map[string]any{"podTemplate": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "agent", "image": "agent:dev"}}}}}

	for _, tt := range []struct {
		name string
		obj  client.Object
		want string // "" admitted, else the start of the error
	}{
		{"sandbox pod in a tenant namespace", pod(tenant.Name, map[string]string{hash: "x"}), sandbox},
		{"opted-in pod in a tenant namespace", pod(tenant.Name, map[string]string{inject: "true"}), optedIn},
		{"opted-out sandbox pod in a tenant namespace", pod(tenant.Name, map[string]string{hash: "x", inject: "false"}), validation},
		{"other pod in a tenant namespace", pod(tenant.Name, nil), validation},
		{"sandbox pod in another namespace", pod(other.Name, map[string]string{hash: "x"}), validation},
		{"ConfigMap in another namespace", cm(other.Name), validation},
		{"Sandbox in another namespace", sb, validation},
		{"Secret in a tenant namespace", secret, ""},
		{"pod in kube-system", pod("kube-system", map[string]string{hash: "x"}), ""},
		{"ConfigMap in kube-system", cm("kube-system"), ""},
		{"pod in the webhook's namespace", pod("sandbox-webhook-system", map[string]string{hash: "x"}), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := cp.Client.Create(ctx, tt.obj, client.DryRunAll)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("admitted; want refused with %q...", tt.want)
			case tt.want != "" && !strings.HasPrefix(err.Error(), tt.want):
				t.Errorf("refused with\n%v\nwant\n%s...", err, tt.want)
			case err != nil:
				t.Logf("refused as expected: %v", err)
			}
		})
	}
}
