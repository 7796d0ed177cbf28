package tenancy

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/webhook"
)

// The cache keeps stripped Namespaces and ServiceAccounts; the reconciler must decide
// the same on them as on the full objects.
func TestDesiredSubjectsAreTheSameOnStrippedCacheObjects(t *testing.T) {
	cfg := policy.DefaultConfig()
	now := metav1.Now()
	full := func(name string, labels map[string]string, deleted bool, phase corev1.NamespacePhase) corev1.Namespace {
		ns := corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, UID: "u-" + types.UID(name), ResourceVersion: "7", Labels: labels,
				Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
			},
			Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
			Status: corev1.NamespaceStatus{Phase: phase, Conditions: []corev1.NamespaceCondition{{Type: "NamespaceDeletionContentFailure"}}},
		}
		if deleted {
			ns.DeletionTimestamp = &now
		}
		return ns
	}
	tenant := map[string]string{"sandbox-webhook.io/tenant": "true"}
	namespaces := []corev1.Namespace{
		full("tenant-a", tenant, false, corev1.NamespaceActive),
		full("tenant-gone", tenant, true, corev1.NamespaceActive),
		full("tenant-ending", tenant, false, corev1.NamespaceTerminating),
		full("plain", map[string]string{"team": "x"}, false, corev1.NamespaceActive),
	}
	var accounts []corev1.ServiceAccount
	for _, ns := range namespaces {
		accounts = append(accounts, corev1.ServiceAccount{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns.Name, Name: cfg.Tenancy.ServiceAccountName,
				Annotations:   map[string]string{"eks.amazonaws.com/role-arn": "arn"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			},
			Secrets: []corev1.ObjectReference{{Name: "token"}},
		})
	}
	var strippedNS []corev1.Namespace
	for i := range namespaces {
		o, err := webhook.StripNamespace(namespaces[i].DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		ns := o.(*corev1.Namespace)
		if ns.Annotations != nil || ns.ManagedFields != nil || ns.Spec.Finalizers != nil || ns.Status.Conditions != nil {
			t.Errorf("%s: the stripped Namespace keeps more than the tenant checks read: %+v", ns.Name, ns)
		}
		strippedNS = append(strippedNS, *ns)
	}
	var strippedSA []corev1.ServiceAccount
	for i := range accounts {
		o, err := StripServiceAccount(accounts[i].DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		sa := o.(*corev1.ServiceAccount)
		if sa.Annotations != nil || sa.ManagedFields != nil || sa.Secrets != nil {
			t.Errorf("%s: the stripped ServiceAccount keeps more than the reconciler reads: %+v", sa.Namespace, sa)
		}
		strippedSA = append(strippedSA, *sa)
	}
	want := DesiredSubjects(cfg, namespaces, accounts)
	got := DesiredSubjects(cfg, strippedNS, strippedSA)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("on stripped objects: %+v, on full ones: %+v", got, want)
	}
	if want.Namespaces != 1 || len(want.Subjects) != 1 {
		t.Fatalf("want the one live tenant, got %+v", want)
	}
}
