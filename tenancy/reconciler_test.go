package tenancy

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

// Subjects a person added by hand: another kind, and another name in a tenant namespace.
func foreignSubjects(s *suite) []rbacv1.Subject {
	return []rbacv1.Subject{
		{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice@example.com"},
		{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "auditors"},
		{Kind: rbacv1.ServiceAccountKind, Namespace: s.nsName("a"), Name: "debugger"},
	}
}

func TestBindingFollowsTenantsAndKeepsForeignSubjects(t *testing.T) {
	s := newSuite(t, "lifecycle", nil)
	s.createTenant("a", true)
	s.createTenant("b", true)
	s.startManager(true)

	b := s.waitForSubjects("two tenants give both subjects", s.gateway("a"), s.gateway("b"))
	if b.Labels[LabelManagedBy] != "sandbox-webhook" || b.RoleRef.APIGroup != rbacv1.GroupName {
		t.Errorf("created binding lacks the managed-by label or roleRef group: %v %+v", b.Labels, b.RoleRef)
	}
	if got, want := b.Annotations[AnnotationManagedSubjects], s.nsName("a")+"/openshell-gateway,"+s.nsName("b")+"/openshell-gateway"; got != want {
		t.Errorf("managed annotation = %q, want %q", got, want)
	}

	foreign := foreignSubjects(s)
	s.editBinding(func(b *rbacv1.ClusterRoleBinding) { b.Subjects = append(b.Subjects, foreign...) })
	s.waitForSubjects("hand-added subjects are kept", append(slices.Clone(foreign), s.gateway("a"), s.gateway("b"))...)

	s.createTenant("c", true)
	s.waitForSubjects("a third tenant adds a third subject", append(slices.Clone(foreign), s.gateway("a"), s.gateway("b"), s.gateway("c"))...)

	s.deleteTenant("b")
	b = s.waitForSubjects("a deleted tenant loses only its own subject", append(slices.Clone(foreign), s.gateway("a"), s.gateway("c"))...)

	// A reconcile with nothing to change writes nothing.
	rv, before := b.ResourceVersion, reconciles(t)
	s.createTenant("no-account-yet", false)
	eventually(t, "a reconcile after an event that changes nothing", func() (bool, string) {
		return reconciles(t) > before, fmt.Sprint(reconciles(t))
	})
	if b, err := s.binding(); err != nil || b.ResourceVersion != rv {
		t.Errorf("binding was written although nothing changed (resourceVersion %s -> %s, %v)", rv, b.ResourceVersion, err)
	}

	s.editBinding(func(b *rbacv1.ClusterRoleBinding) {
		// Drop one managed subject, garble another, reorder the rest.
		b.Subjects = []rbacv1.Subject{foreign[2], foreign[0], {Kind: rbacv1.ServiceAccountKind, Namespace: s.nsName("c"), Name: "openshell-gateway-typo"}, foreign[1]}
	})
	s.waitForSubjects("hand-edited subjects are restored, hand-added ones kept",
		append(slices.Clone(foreign), s.gateway("a"), s.gateway("c"), rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: s.nsName("c"), Name: "openshell-gateway-typo"})...)

	if err := cp.Client.Delete(s.ctx, b); err != nil {
		t.Fatal(err)
	}
	s.waitForSubjects("a binding deleted by hand comes back", s.gateway("a"), s.gateway("c"))
}

func TestNamespaceWithoutGatewayAccountGetsNoSubjectUntilItAppears(t *testing.T) {
	s := newSuite(t, "account", nil)
	s.createTenant("ready", true)
	s.createTenant("waiting", false)
	s.startManager(true)
	s.waitForSubjects("only the tenant holding the account", s.gateway("ready"))

	// Another reconcile, triggered by the namespace, still leaves the account-less tenant out.
	before := reconciles(t)
	s.editNamespaceLabel("waiting", "touched", "yes")
	eventually(t, "a reconcile after touching the namespace", func() (bool, string) {
		return reconciles(t) > before, fmt.Sprint(reconciles(t))
	})
	s.waitForSubjects("still only the tenant holding the account", s.gateway("ready"))

	s.createAccount("waiting")
	s.waitForSubjects("the account's arrival adds the subject", s.gateway("ready"), s.gateway("waiting"))

	if err := cp.Client.Delete(s.ctx, accountObject(s, "ready")); err != nil {
		t.Fatal(err)
	}
	s.waitForSubjects("the account's removal removes the subject", s.gateway("waiting"))
}

func (s *suite) editNamespaceLabel(name, key, value string) {
	s.t.Helper()
	ns := envtestutil.NamespaceObject(s.nsName(name), nil)
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, key, value))
	if err := cp.Client.Patch(s.ctx, ns, patch); err != nil {
		s.t.Fatalf("labelling namespace %s: %v", ns.Name, err)
	}
}

func TestRoleRefMismatchIsReportedAndRecreatedOnlyWhenAllowed(t *testing.T) {
	s := newSuite(t, "roleref", nil)
	s.createTenant("a", true)
	foreign := foreignSubjects(s)
	wrong := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: s.cfg.Tenancy.BindingName, Labels: map[string]string{"team": "platform"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   foreign,
	}
	if err := cp.Client.Create(s.ctx, wrong); err != nil {
		t.Fatal(err)
	}

	m := s.startManager(true)
	eventually(t, "a RoleRefMismatch event on the binding", func() (bool, string) {
		var list eventsv1.EventList
		if err := cp.Client.List(s.ctx, &list); err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if e.Reason == "RoleRefMismatch" && e.Regarding.Kind == "ClusterRoleBinding" && e.Regarding.Name == wrong.Name && e.Type == "Warning" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none about the mismatch", len(list.Items))
	})
	before := reconciles(t)
	s.createTenant("b", true)
	eventually(t, "a reconcile after a new tenant", func() (bool, string) {
		return reconciles(t) > before, fmt.Sprint(reconciles(t))
	})
	b, err := s.binding()
	if err != nil || b.UID != wrong.UID || b.ResourceVersion != wrong.ResourceVersion {
		t.Fatalf("a binding with another roleRef was touched although recreation is off: %v %+v", err, b)
	}
	m.stop(t)

	s.cfg = newSuite(t, "roleref", func(c *policy.Config) { c.Tenancy.RecreateOnRoleRefMismatch = true }).cfg
	s.startManager(true)
	b = s.waitForSubjects("recreated with the configured roleRef, foreign subjects kept",
		append(slices.Clone(foreign), s.gateway("a"), s.gateway("b"))...)
	if b.UID == wrong.UID || b.Labels["team"] != "platform" {
		t.Errorf("binding not recreated or its labels lost: uid %s, labels %v", b.UID, b.Labels)
	}
}

func accountObject(s *suite, name string) client.Object {
	a := &corev1.ServiceAccount{}
	a.Namespace, a.Name = s.nsName(name), s.cfg.Tenancy.ServiceAccountName
	return a
}
