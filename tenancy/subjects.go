package tenancy

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// AnnotationManagedSubjects on the binding lists the subjects the reconciler added, as
// sorted "namespace/name" ServiceAccount references separated by commas. Subjects not
// listed there are never removed.
const AnnotationManagedSubjects = "sandbox-webhook.io/managed-subjects"

// Tenants is what the reconciler sees of the cluster: the live tenant namespaces and the
// subjects they should have on the binding.
type Tenants struct {
	// Namespaces is the number of tenant namespaces that exist and are not terminating.
	Namespaces int
	// Subjects are the gateway ServiceAccounts of those namespaces that hold one, sorted.
	Subjects []rbacv1.Subject
}

// DesiredSubjects is the gateway ServiceAccount of every tenant namespace that exists, is
// not terminating and holds that ServiceAccount. A terminating namespace counts as gone.
func DesiredSubjects(cfg *policy.Config, namespaces []corev1.Namespace, serviceAccounts []corev1.ServiceAccount) Tenants {
	live := make(map[string]bool, len(namespaces))
	for i := range namespaces {
		ns := &namespaces[i]
		if ns.DeletionTimestamp == nil && ns.Status.Phase != corev1.NamespaceTerminating && cfg.IsTenantNamespace(ns.Name, ns.Labels) {
			live[ns.Name] = true
		}
	}
	var out []rbacv1.Subject
	seen := make(map[string]bool, len(live))
	for i := range serviceAccounts {
		sa := &serviceAccounts[i]
		if sa.Name != cfg.Tenancy.ServiceAccountName || sa.DeletionTimestamp != nil || !live[sa.Namespace] || seen[sa.Namespace] {
			continue
		}
		seen[sa.Namespace] = true
		out = append(out, serviceAccountSubject(sa.Namespace, sa.Name))
	}
	SortSubjects(out)
	return Tenants{Namespaces: len(live), Subjects: out}
}

func serviceAccountSubject(namespace, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}
}

// SortSubjects orders subjects by kind, API group, namespace and name.
func SortSubjects(s []rbacv1.Subject) {
	slices.SortFunc(s, compareSubjects)
}

func compareSubjects(a, b rbacv1.Subject) int {
	return cmp.Or(
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.APIGroup, b.APIGroup),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
	)
}

// ParseManagedSubjects reads the AnnotationManagedSubjects value. Entries that are not a
// "namespace/name" pair are skipped: an unreadable entry is treated as not added by the
// reconciler, so it is never removed.
func ParseManagedSubjects(value string) []rbacv1.Subject {
	var out []rbacv1.Subject
	for entry := range strings.SplitSeq(value, ",") {
		ns, name, ok := strings.Cut(strings.TrimSpace(entry), "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			continue
		}
		out = append(out, serviceAccountSubject(ns, name))
	}
	return out
}

// FormatManagedSubjects is the AnnotationManagedSubjects value for ServiceAccount
// subjects, sorted.
func FormatManagedSubjects(subjects []rbacv1.Subject) string {
	refs := make([]string, 0, len(subjects))
	for _, s := range subjects {
		refs = append(refs, s.Namespace+"/"+s.Name)
	}
	slices.Sort(refs)
	return strings.Join(refs, ",")
}

// MergedSubjects is the binding's next state.
type MergedSubjects struct {
	// Subjects is every subject the binding must hold, sorted and without duplicates.
	Subjects []rbacv1.Subject
	// Managed are the subjects the reconciler added and may remove later, sorted.
	Managed []rbacv1.Subject
}

// MergeSubjects computes the binding's subjects from what it holds now, what the
// reconciler recorded as added, and what the live tenants need. Subjects the reconciler
// did not add stay, whatever they are; subjects it added stay only while desired. A
// desired subject that is already present but was not added by the reconciler is left
// unclaimed, so it outlives its tenant as whoever added it intended.
func MergeSubjects(current, managed, desired []rbacv1.Subject) MergedSubjects {
	isManaged := make(map[rbacv1.Subject]bool, len(managed))
	for _, s := range managed {
		isManaged[s] = true
	}
	foreign := make(map[rbacv1.Subject]bool)
	all := make(map[rbacv1.Subject]bool, len(current)+len(desired))
	for _, s := range current {
		if !isManaged[s] {
			foreign[s] = true
			all[s] = true
		}
	}
	var m MergedSubjects
	for _, s := range desired {
		if all[s] {
			continue
		}
		all[s] = true
		m.Managed = append(m.Managed, s)
	}
	m.Subjects = make([]rbacv1.Subject, 0, len(all))
	for s := range all {
		m.Subjects = append(m.Subjects, s)
	}
	SortSubjects(m.Subjects)
	SortSubjects(m.Managed)
	return m
}
