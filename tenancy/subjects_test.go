package tenancy

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

func sa(ns, name string) rbacv1.Subject { return serviceAccountSubject(ns, name) }

func TestDesiredSubjectsAreLiveTenantsHoldingTheGatewayServiceAccount(t *testing.T) {
	cfg := policy.DefaultConfig()
	tenant := map[string]string{"sandbox-webhook.io/tenant": "true"}
	now := metav1.Now()
	ns := func(name string, labels map[string]string) corev1.Namespace {
		n := corev1.Namespace{}
		n.Name, n.Labels = name, labels
		return n
	}
	terminating := ns("tenant-gone", tenant)
	terminating.DeletionTimestamp = &now
	phaseTerminating := ns("tenant-ending", tenant)
	phaseTerminating.Status.Phase = corev1.NamespaceTerminating
	namespaces := []corev1.Namespace{
		ns("tenant-b", tenant), ns("tenant-a", tenant), ns("tenant-no-sa", tenant),
		ns("plain", nil), ns("kube-system", tenant), ns("sandbox-webhook-system", tenant),
		terminating, phaseTerminating,
	}
	account := func(ns, name string) corev1.ServiceAccount {
		a := corev1.ServiceAccount{}
		a.Namespace, a.Name = ns, name
		return a
	}
	accounts := []corev1.ServiceAccount{
		account("tenant-b", "openshell-gateway"), account("tenant-a", "openshell-gateway"),
		account("tenant-a", "default"), account("plain", "openshell-gateway"),
		account("kube-system", "openshell-gateway"), account("sandbox-webhook-system", "openshell-gateway"),
		account("tenant-gone", "openshell-gateway"), account("tenant-ending", "openshell-gateway"),
		account("no-namespace", "openshell-gateway"),
	}
	got := DesiredSubjects(cfg, namespaces, accounts)
	want := []rbacv1.Subject{sa("tenant-a", "openshell-gateway"), sa("tenant-b", "openshell-gateway")}
	if !reflect.DeepEqual(got.Subjects, want) {
		t.Errorf("subjects = %v, want %v", got.Subjects, want)
	}
	if got.Namespaces != 3 {
		t.Errorf("live tenants = %d, want 3 (tenant-a, tenant-b, tenant-no-sa)", got.Namespaces)
	}
}

func TestManagedSubjectsAnnotationRoundTripsAndSkipsGarbage(t *testing.T) {
	subjects := []rbacv1.Subject{sa("b", "gw"), sa("a", "gw")}
	value := FormatManagedSubjects(subjects)
	if value != "a/gw,b/gw" {
		t.Fatalf("annotation = %q, want sorted a/gw,b/gw", value)
	}
	got := ParseManagedSubjects(value + ",,garbage,/x,y/,a/b/c, c/gw ")
	want := []rbacv1.Subject{sa("a", "gw"), sa("b", "gw"), sa("c", "gw")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed %v, want %v", got, want)
	}
	if got := ParseManagedSubjects(""); len(got) != 0 {
		t.Errorf("empty annotation parsed to %v", got)
	}
}

func TestMergeSubjects(t *testing.T) {
	user := rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}
	otherSA := sa("tenant-a", "debugger")
	cases := []struct {
		name                   string
		current, managed, want []rbacv1.Subject
		desired                []rbacv1.Subject
		wantManaged            []rbacv1.Subject
	}{
		{
			name:        "empty binding gets every desired subject, all managed",
			desired:     []rbacv1.Subject{sa("b", "gw"), sa("a", "gw")},
			want:        []rbacv1.Subject{sa("a", "gw"), sa("b", "gw")},
			wantManaged: []rbacv1.Subject{sa("a", "gw"), sa("b", "gw")},
		},
		{
			name:        "a managed subject whose tenant is gone is removed; foreign ones stay",
			current:     []rbacv1.Subject{sa("a", "gw"), user, sa("b", "gw"), otherSA},
			managed:     []rbacv1.Subject{sa("a", "gw"), sa("b", "gw")},
			desired:     []rbacv1.Subject{sa("a", "gw")},
			want:        []rbacv1.Subject{sa("a", "gw"), otherSA, user},
			wantManaged: []rbacv1.Subject{sa("a", "gw")},
		},
		{
			name:        "a foreign subject equal to a desired one stays foreign and outlives its tenant",
			current:     []rbacv1.Subject{sa("a", "gw")},
			desired:     nil,
			want:        []rbacv1.Subject{sa("a", "gw")},
			wantManaged: nil,
		},
		{
			name:        "a foreign subject equal to a desired one is not claimed",
			current:     []rbacv1.Subject{sa("a", "gw")},
			desired:     []rbacv1.Subject{sa("a", "gw"), sa("b", "gw")},
			want:        []rbacv1.Subject{sa("a", "gw"), sa("b", "gw")},
			wantManaged: []rbacv1.Subject{sa("b", "gw")},
		},
		{
			name:        "a managed subject removed by hand comes back",
			current:     []rbacv1.Subject{user},
			managed:     []rbacv1.Subject{sa("a", "gw")},
			desired:     []rbacv1.Subject{sa("a", "gw")},
			want:        []rbacv1.Subject{sa("a", "gw"), user},
			wantManaged: []rbacv1.Subject{sa("a", "gw")},
		},
		{
			name:        "duplicates collapse",
			current:     []rbacv1.Subject{user, user, sa("a", "gw"), sa("a", "gw")},
			managed:     []rbacv1.Subject{sa("a", "gw")},
			desired:     []rbacv1.Subject{sa("a", "gw"), sa("a", "gw")},
			want:        []rbacv1.Subject{sa("a", "gw"), user},
			wantManaged: []rbacv1.Subject{sa("a", "gw")},
		},
		{
			name:    "a managed entry for something not present and not desired is forgotten",
			current: []rbacv1.Subject{user},
			managed: []rbacv1.Subject{sa("gone", "gw")},
			want:    []rbacv1.Subject{user},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := MergeSubjects(tc.current, tc.managed, tc.desired)
			if !reflect.DeepEqual(got.Subjects, tc.want) {
				t.Errorf("subjects = %v, want %v", got.Subjects, tc.want)
			}
			if !reflect.DeepEqual(got.Managed, tc.wantManaged) {
				t.Errorf("managed = %v, want %v", got.Managed, tc.wantManaged)
			}
			again := MergeSubjects(got.Subjects, got.Managed, tc.desired)
			if !reflect.DeepEqual(again, got) {
				t.Errorf("merge is not idempotent: %v then %v", got, again)
			}
		})
	}
}
