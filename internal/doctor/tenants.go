package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// tenant is what the end-to-end checks need of a checked tenant.
type tenant struct {
	name       string
	credential policy.InferenceCredential
}

// tenants checks every tenant namespace (or the one of --namespace) and returns those
// whose namespace exists and is a tenant.
func (d *doctor) tenants(ctx context.Context) []tenant {
	names, ok := d.tenantNames(ctx)
	if !ok {
		return nil
	}
	var binding *rbacv1.ClusterRoleBinding
	var bindingErr error
	if d.cfg.TenancyEnabled() {
		rctx, cancel := d.timeout(ctx)
		binding = &rbacv1.ClusterRoleBinding{}
		bindingErr = d.c.Get(rctx, client.ObjectKey{Name: d.cfg.Tenancy.BindingName}, binding)
		cancel()
	}
	var out []tenant
	for _, ns := range names {
		if t, ok := d.tenant(ctx, ns, binding, bindingErr); ok {
			out = append(out, t)
		}
	}
	return out
}

// tenantNames lists the tenant namespaces, or returns the one of --namespace.
func (d *doctor) tenantNames(ctx context.Context) ([]string, bool) {
	if d.opts.Namespace != "" {
		return []string{d.opts.Namespace}, true
	}
	d.section = "tenants"
	rctx, cancel := d.timeout(ctx)
	defer cancel()
	list := &corev1.NamespaceList{}
	sel := d.cfg.TenantSelector()
	if err := d.c.List(rctx, list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
		d.add(Failed, "tenant namespaces", "run doctor with credentials that may list Namespaces, or name one tenant with --namespace", "cannot list namespaces: %v", err)
		return nil, false
	}
	var names []string
	for _, ns := range list.Items {
		if d.cfg.IsTenantNamespace(ns.Name, ns.Labels) {
			names = append(names, ns.Name)
		}
	}
	if len(names) == 0 {
		d.add(Warned, "tenant namespaces", "label each tenant namespace: kubectl label namespace <name> "+selectorHint(d.cfg),
			"no namespace matches tenants.namespaceSelector %q: no pod is injected anywhere", d.cfg.Tenants.NamespaceSelector)
		return nil, false
	}
	slices.Sort(names)
	d.add(Passed, "tenant namespaces", "", "%d tenant%s (tenants.namespaceSelector %q): %s", len(names), plural(len(names)), d.cfg.Tenants.NamespaceSelector, strings.Join(names, ", "))
	return names, true
}

// selectorHint is a label assignment that satisfies the tenant selector, when the
// selector is a plain key=value.
func selectorHint(cfg *policy.Config) string {
	if k, v, ok := strings.Cut(cfg.Tenants.NamespaceSelector, "="); ok && !strings.ContainsAny(cfg.Tenants.NamespaceSelector, ",!()") {
		return strings.TrimSpace(strings.TrimPrefix(k, "=")) + "=" + strings.TrimSpace(strings.TrimPrefix(v, "="))
	}
	return "<labels matching " + cfg.Tenants.NamespaceSelector + ">"
}

func (d *doctor) tenant(ctx context.Context, name string, binding *rbacv1.ClusterRoleBinding, bindingErr error) (tenant, bool) {
	d.section = "tenant " + name
	cfg := d.cfg
	t := tenant{name: name}
	rctx, cancel := d.timeout(ctx)
	defer cancel()

	ns := &corev1.Namespace{}
	if err := d.c.Get(rctx, client.ObjectKey{Name: name}, ns); err != nil {
		fix := "name an existing tenant namespace with --namespace"
		if !apierrors.IsNotFound(err) {
			fix = "run doctor with credentials that may read Namespaces"
		}
		d.add(Failed, "namespace", fix, "namespace %s: %v", name, err)
		return t, false
	}
	switch {
	case cfg.IsExcludedNamespace(name):
		d.add(Failed, "namespace", "use another namespace for tenants: kube-system, kube-public, kube-node-lease, the webhook's own and tenants.excludedNamespaces are never tenants",
			"namespace %s is excluded from injection whatever its labels", name)
		return t, false
	case !cfg.IsTenantNamespace(name, ns.Labels):
		d.add(Failed, "namespace", "kubectl label namespace "+name+" "+selectorHint(cfg),
			"namespace %s does not match tenants.namespaceSelector %q: its sandbox pods are not injected", name, cfg.Tenants.NamespaceSelector)
		return t, false
	case ns.DeletionTimestamp != nil:
		d.add(Warned, "namespace", "wait for the deletion to finish, or recreate the namespace", "namespace %s is terminating: its gateway leaves the binding", name)
	default:
		d.add(Passed, "namespace", "", "labelled as a tenant (tenants.namespaceSelector %q)", cfg.Tenants.NamespaceSelector)
	}

	saName := cfg.Tenancy.ServiceAccountName
	user := "system:serviceaccount:" + name + ":" + saName
	sa := &corev1.ServiceAccount{}
	if err := d.c.Get(rctx, client.ObjectKey{Namespace: name, Name: saName}, sa); err != nil {
		d.add(Failed, "gateway ServiceAccount", fmt.Sprintf("kubectl -n %s create serviceaccount %s (the gateway runs as it)", name, saName), "ServiceAccount %s/%s: %v", name, saName, err)
	} else {
		d.add(Passed, "gateway ServiceAccount", "", "ServiceAccount %s/%s exists", name, saName)
	}

	switch {
	case !cfg.TenancyEnabled():
		d.add(Skipped, "binding", "", "the tenancy reconciler is off in the config (tenancy.enabled: false): ClusterRoleBinding %s is not managed", cfg.Tenancy.BindingName)
	case bindingErr != nil:
		d.add(Failed, "binding", "check the webhook's logs for the tenancy reconciler (it runs on the leader replica)", "ClusterRoleBinding %s: %v", cfg.Tenancy.BindingName, bindingErr)
	case !slices.ContainsFunc(binding.Subjects, func(s rbacv1.Subject) bool {
		return s.Kind == rbacv1.ServiceAccountKind && s.Namespace == name && s.Name == saName
	}):
		d.add(Failed, "binding", "the tenancy reconciler adds it once the namespace is a tenant and holds the ServiceAccount: check the webhook's logs for tenancy errors",
			"ServiceAccount %s/%s is not a subject of ClusterRoleBinding %s", name, saName, binding.Name)
	case binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != cfg.Tenancy.ClusterRoleName:
		d.add(Failed, "binding", "roleRef is immutable: delete the binding and let the reconciler recreate it, or set tenancy.recreateOnRoleRefMismatch: true",
			"ClusterRoleBinding %s lists the gateway but refers to %s %s, not ClusterRole %s", binding.Name, binding.RoleRef.Kind, binding.RoleRef.Name, cfg.Tenancy.ClusterRoleName)
	default:
		d.add(Passed, "binding", "", "a subject of ClusterRoleBinding %s (ClusterRole %s)", binding.Name, binding.RoleRef.Name)
	}

	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + name, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create",
		},
	}}
	if err := d.c.Create(rctx, sar); err != nil {
		d.add(Failed, "TokenReview allowed", "run doctor with credentials that may create subjectaccessreviews", "SubjectAccessReview for %s: %v", user, err)
	} else if !sar.Status.Allowed {
		why := sar.Status.Reason
		if why == "" {
			why = "no rule allows it"
		}
		d.add(Failed, "TokenReview allowed", fmt.Sprintf("ClusterRole %s must grant create on tokenreviews (manifests/base/gateway-clusterrole.yaml) and bind the gateway", cfg.Tenancy.ClusterRoleName),
			"%s may not create tokenreviews (%s): the gateway cannot check sandbox tokens, every sandbox call fails Unauthenticated", user, why)
	} else {
		d.add(Passed, "TokenReview allowed", "", "%s may create tokenreviews", user)
	}

	t.credential = d.credential(rctx, name)
	return t, true
}

// credential classifies the namespace's inference credentials with the webhook's own
// code. It reads only the Secrets with the provider label and prints no value.
func (d *doctor) credential(ctx context.Context, ns string) policy.InferenceCredential {
	cfg := d.cfg
	req, err := labels.NewRequirement(cfg.Inference.ProviderLabel, selection.Exists, nil)
	if err != nil {
		cred := policy.InferenceCredentialUnavailable(err.Error())
		d.add(Failed, "inference credential", "fix inference.providerLabel in the config", "%s", cred.Detail)
		return cred
	}
	list := &corev1.SecretList{}
	if err := d.c.List(ctx, list, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*req)}); err != nil {
		cred := policy.InferenceCredentialUnavailable(err.Error())
		d.add(Warned, "inference credential", "run doctor with credentials that may list Secrets in "+ns+" (only those labelled "+cfg.Inference.ProviderLabel+" are read)", "%s", cred.Detail)
		return cred
	}
	cred := policy.ClassifyInferenceCredentials(list.Items, cfg)
	flag := fmt.Sprintf("sandboxes get %s=%t", cfg.Inference.Env, cred.Usable())
	switch cred.State {
	case policy.CredentialUsable:
		d.add(Passed, "inference credential", "", "%s: %s; %s", cred.State, cred.Detail, flag)
	case policy.CredentialNone:
		d.add(Passed, "inference credential", "", "%s: no Secret labelled %s; %s (inference through the gateway is off)", cred.State, cfg.Inference.ProviderLabel, flag)
	default:
		d.add(Warned, "inference credential", credentialFix(cred, cfg), "%s: %s; %s", cred.State, cred.Detail, flag)
	}
	return cred
}

func credentialFix(cred policy.InferenceCredential, cfg *policy.Config) string {
	switch cred.State {
	case policy.CredentialUnknownType:
		return fmt.Sprintf("set label %s to one of %s", cfg.Inference.ProviderLabel, strings.Join(cfg.Inference.ProviderTypes, ", "))
	case policy.CredentialEmpty:
		return fmt.Sprintf("put the credential in Secret %s's data (kubectl -n <namespace> create secret generic ... --from-file)", cred.Secret)
	case policy.CredentialIncompatible, policy.CredentialUnparsable:
		return fmt.Sprintf("Secret %s must hold a Google service-account JSON key (type service_account, client_email, private_key)", cred.Secret)
	}
	return "see the webhook's warning on the next sandbox pod for the reason"
}
