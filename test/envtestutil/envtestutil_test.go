package envtestutil

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var cp *ControlPlane

func TestMain(m *testing.M) { Main(m, Options{}, &cp) }

func TestControlPlaneStoresAndReturnsANamespace(t *testing.T) {
	ctx := context.Background()
	ns := NamespaceObject("toolchain-proof", map[string]string{"sandbox-webhook.io/tenant": "true"})
	if err := cp.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	var got corev1.Namespace
	if err := cp.Client.Get(ctx, client.ObjectKey{Name: "toolchain-proof"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.UID == "" || got.Labels["sandbox-webhook.io/tenant"] != "true" {
		t.Fatalf("namespace read back without uid or label: %+v", got.ObjectMeta)
	}
}

func TestSandboxCRDServesBothVersions(t *testing.T) {
	ctx := context.Background()
	for i, version := range []string{"v1alpha1", "v1beta1"} {
		sb := &unstructured.Unstructured{}
		sb.SetGroupVersionKind(schema.GroupVersionKind{Group: "agents.x-k8s.io", Version: version, Kind: "Sandbox"})
		sb.SetNamespace("default")
		sb.SetName("sb-" + version)
		sb.Object["spec"] = map[string]any{"podTemplate": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "agent", "image": "agent:dev"}}}}, "n": int64(i)}
		if err := cp.Client.Create(ctx, sb); err != nil {
			t.Fatalf("create %s Sandbox: %v", version, err)
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(sb.GroupVersionKind())
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(sb), got); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := unstructured.NestedSlice(got.Object, "spec", "podTemplate", "spec", "containers"); !ok {
			t.Fatalf("%s Sandbox lost its unknown spec fields: %v", version, got.Object["spec"])
		}
	}
}
