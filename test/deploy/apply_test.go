package deploy

import (
	"context"
	"strings"
	"testing"

	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestTheAPIServerAcceptsEveryObject creates every object of every folder with a
// server-side dry run (dryRun=All: validated and admitted, never stored), in a
// namespace that enforces the restricted Pod Security Standard, as `kubectl apply -k`
// would send them. Any refusal, and any warning (Pod Security, deprecated fields), fails.
func TestTheAPIServerAcceptsEveryObject(t *testing.T) {
	ctx := context.Background()
	for _, f := range folders {
		t.Run(f.dir, func(t *testing.T) {
			objs := build(t, f.dir)
			// Namespaced objects need their Namespace: it is created for real.
			ensureNamespaces(t, objs)
			c, warnings := warningClient(t)
			kinds := map[string]int{}
			for _, o := range objs {
				if o.GetKind() == "Namespace" {
					kinds[o.GetKind()]++
					continue
				}
				obj := o.DeepCopy()
				if err := c.Create(ctx, obj, client.DryRunAll); err != nil {
					t.Errorf("the API server refuses %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
					continue
				}
				kinds[o.GetKind()]++
			}
			if w := warnings.Take(); len(w) > 0 {
				t.Errorf("warnings from the API server:\n%s", strings.Join(w, "\n"))
			}
			for _, kind := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
				"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "NetworkPolicy",
				"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
				if kinds[kind] == 0 {
					t.Errorf("no %s accepted", kind)
				}
			}
			if f.dir != "base" && (kinds["Certificate"] != 2 || kinds["Issuer"] != 2) {
				t.Errorf("accepted %d Certificates and %d Issuers, want 2 of each", kinds["Certificate"], kinds["Issuer"])
			}
			t.Logf("accepted %v", kinds)
		})
	}
}

// TestPodSecurityWarningsAreSeen proves that the check above can fail: the same
// Deployment without its container securityContext draws Pod Security warnings.
func TestPodSecurityWarningsAreSeen(t *testing.T) {
	objs := build(t, "base")
	ensureNamespaces(t, objs)
	c, warnings := warningClient(t)
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		obj := o.DeepCopy()
		containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		delete(containers[0].(map[string]any), "securityContext")
		if err := unstructured.SetNestedSlice(obj.Object, containers, "spec", "template", "spec", "containers"); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(context.Background(), obj, client.DryRunAll); err != nil {
			t.Fatal(err)
		}
		w := strings.Join(warnings.Take(), "\n")
		if !strings.Contains(w, "restricted") || !strings.Contains(w, "allowPrivilegeEscalation") {
			t.Errorf("no Pod Security warning for a container without securityContext; got %q", w)
		}
		return
	}
	t.Fatal("no Deployment in the base")
}

func warningClient(t *testing.T) (client.Client, *envtestutil.WarningRecorder) {
	t.Helper()
	return cp.WarningClient(t)
}
