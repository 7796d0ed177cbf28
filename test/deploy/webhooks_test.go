package deploy

import (
	"fmt"
	"slices"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/webhook"
)

const (
	sandboxPodsWebhook  = "sandbox-pods.inject.sandbox-webhook.io"
	optedInPodsWebhook  = "opted-in-pods.inject.sandbox-webhook.io"
	privateKeysWebhook  = "private-keys.sandbox-webhook.io"
	injectCAAnnotation  = "cert-manager.io/inject-ca-from"
	namespaceNameLabel  = "kubernetes.io/metadata.name"
	servingCertificate  = "sandbox-webhook-serving"
	servingCertSecret   = "sandbox-webhook-serving-cert"
	webhookConfigName   = "sandbox-webhook"
	webhookServiceName  = "sandbox-webhook"
	webhookServicePort  = 443
	webhookPortName     = "webhook"
	webhookTimeoutLimit = 10
)

// webhookConfigurations are the build's two webhook configurations.
func webhookConfigurations(t *testing.T, objs []*unstructured.Unstructured) (*admissionv1.MutatingWebhookConfiguration, *admissionv1.ValidatingWebhookConfiguration) {
	t.Helper()
	var mut admissionv1.MutatingWebhookConfiguration
	var val admissionv1.ValidatingWebhookConfiguration
	find(t, objs, "MutatingWebhookConfiguration", webhookConfigName, &mut)
	find(t, objs, "ValidatingWebhookConfiguration", webhookConfigName, &val)
	return &mut, &val
}

// hook is what this package checks on every webhook of either kind.
type hook struct {
	name              string
	path              string
	cc                admissionv1.WebhookClientConfig
	sideEffects       *admissionv1.SideEffectClass
	matchPolicy       *admissionv1.MatchPolicyType
	failurePolicy     *admissionv1.FailurePolicyType
	timeoutSeconds    *int32
	reviewVersions    []string
	namespaceSelector *metav1.LabelSelector
	rules             []admissionv1.RuleWithOperations
}

func hooks(mut *admissionv1.MutatingWebhookConfiguration, val *admissionv1.ValidatingWebhookConfiguration) []hook {
	var out []hook
	for _, w := range mut.Webhooks {
		out = append(out, hook{w.Name, webhook.PathMutatePods, w.ClientConfig, w.SideEffects, w.MatchPolicy, w.FailurePolicy, w.TimeoutSeconds, w.AdmissionReviewVersions, w.NamespaceSelector, w.Rules})
	}
	for _, w := range val.Webhooks {
		out = append(out, hook{w.Name, webhook.PathValidatePrivateKeys, w.ClientConfig, w.SideEffects, w.MatchPolicy, w.FailurePolicy, w.TimeoutSeconds, w.AdmissionReviewVersions, w.NamespaceSelector, w.Rules})
	}
	return out
}

func TestWebhookConfigurationsMatchTheServer(t *testing.T) {
	for _, f := range folders {
		t.Run(f.dir, func(t *testing.T) {
			objs := build(t, f.dir)
			cfg := deployedConfig(t, objs)
			mut, val := webhookConfigurations(t, objs)
			var names []string
			for _, w := range mut.Webhooks {
				names = append(names, w.Name)
			}
			if want := []string{sandboxPodsWebhook, optedInPodsWebhook}; !slices.Equal(names, want) {
				t.Errorf("mutating webhooks %v, want %v", names, want)
			}
			if len(val.Webhooks) != 1 || val.Webhooks[0].Name != privateKeysWebhook {
				t.Errorf("validating webhooks %d, want the one %s", len(val.Webhooks), privateKeysWebhook)
			}

			// The Service routes port 443 to the container port the server listens on.
			var svc corev1.Service
			find(t, objs, "Service", webhookServiceName, &svc)
			var routed bool
			for _, p := range svc.Spec.Ports {
				routed = routed || (p.Port == webhookServicePort && p.TargetPort.String() == webhookPortName)
			}
			var listening bool
			for _, p := range container(t, deployment(t, objs)).Ports {
				listening = listening || (p.Name == webhookPortName && int(p.ContainerPort) == cfg.Server.Port)
			}
			if !routed || !listening {
				t.Errorf("Service port %d does not reach the container port %q = server.port %d", webhookServicePort, webhookPortName, cfg.Server.Port)
			}

			for _, w := range hooks(mut, val) {
				s := w.cc.Service
				if s == nil || s.Path == nil || *s.Path != w.path || s.Name != svc.Name || s.Namespace != svc.Namespace || s.Port == nil || *s.Port != webhookServicePort {
					t.Errorf("%s: clientConfig %+v does not reach service %s/%s:%d at %s", w.name, s, svc.Namespace, svc.Name, webhookServicePort, w.path)
				}
				if w.cc.URL != nil || len(w.cc.CABundle) != 0 {
					t.Errorf("%s: ships a URL or a caBundle; the CA is injected in the cluster", w.name)
				}
				if w.sideEffects == nil || *w.sideEffects != admissionv1.SideEffectClassNone {
					t.Errorf("%s: sideEffects must be None (dry-run requests are sent too)", w.name)
				}
				if w.matchPolicy == nil || *w.matchPolicy != admissionv1.Equivalent {
					t.Errorf("%s: matchPolicy must be Equivalent", w.name)
				}
				if w.failurePolicy == nil || *w.failurePolicy != admissionv1.Fail {
					t.Errorf("%s: failurePolicy must be Fail", w.name)
				}
				if w.timeoutSeconds == nil || *w.timeoutSeconds < 1 || *w.timeoutSeconds >= webhookTimeoutLimit {
					t.Errorf("%s: timeoutSeconds %v must be set, shorter than the API server's default %ds", w.name, w.timeoutSeconds, webhookTimeoutLimit)
				}
				if !slices.Equal(w.reviewVersions, []string{"v1"}) {
					t.Errorf("%s: admissionReviewVersions %v, want [v1]", w.name, w.reviewVersions)
				}
				for _, r := range w.rules {
					if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") {
						t.Errorf("%s: matches %v; Secrets are where keys belong and are never sent", w.name, r.Resources)
					}
				}
				sel, err := metav1.LabelSelectorAsSelector(w.namespaceSelector)
				if err != nil {
					t.Fatalf("%s: namespaceSelector: %v", w.name, err)
				}
				for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease", cfg.Server.Namespace} {
					if sel.Matches(namespaceLabels(ns, true)) {
						t.Errorf("%s: its namespaceSelector matches %s (even labelled a tenant)", w.name, ns)
					}
				}
				if !sel.Matches(namespaceLabels("tenant-a", true)) {
					t.Errorf("%s: its namespaceSelector does not match a tenant namespace", w.name)
				}
			}

			for _, w := range mut.Webhooks {
				if p := w.ReinvocationPolicy; p == nil || *p != admissionv1.IfNeededReinvocationPolicy {
					t.Errorf("%s: must be reinvoked IfNeeded", w.Name)
				}
				sel, _ := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
				if sel.Matches(namespaceLabels("not-a-tenant", false)) {
					t.Errorf("%s: matches a namespace without the tenant label", w.Name)
				}
				if !cfg.IsTenantNamespace("tenant-a", namespaceLabels("tenant-a", true)) || cfg.IsTenantNamespace("not-a-tenant", namespaceLabels("not-a-tenant", false)) {
					t.Fatal("the test's namespaces are not what the shipped config says they are")
				}
				if len(w.Rules) != 1 || !slices.Equal(w.Rules[0].Operations, []admissionv1.OperationType{admissionv1.Create}) ||
					!slices.Equal(w.Rules[0].Resources, []string{"pods"}) || !slices.Equal(w.Rules[0].APIGroups, []string{""}) {
					t.Errorf("%s: rules %+v, want CREATE of core pods only", w.Name, w.Rules)
				}
			}

			// The validating webhook covers every kind the handler inspects, in any
			// namespace that is not excluded.
			sel, _ := metav1.LabelSelectorAsSelector(val.Webhooks[0].NamespaceSelector)
			if !sel.Matches(namespaceLabels("not-a-tenant", false)) {
				t.Error("the validating webhook must cover namespaces that are not tenants")
			}
			covered := map[string]bool{}
			for _, r := range val.Webhooks[0].Rules {
				ops := slices.Clone(r.Operations)
				slices.Sort(ops)
				if !slices.Equal(ops, []admissionv1.OperationType{admissionv1.Create, admissionv1.Update}) {
					t.Errorf("validating rule %v: operations %v, want CREATE and UPDATE", r.Resources, r.Operations)
				}
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						for _, v := range r.APIVersions {
							covered[fmt.Sprintf("%s/%s/%s", g, v, res)] = true
						}
					}
				}
			}
			// Exactly policy.KeyValidatedResources, the list `check` uses too.
			want := map[string]bool{}
			for _, r := range policy.KeyValidatedResources {
				want[fmt.Sprintf("%s/%s/%s", r.Group, r.Version, r.Resource)] = true
			}
			for w := range want {
				if !covered[w] {
					t.Errorf("the validating webhook does not cover %s (policy.KeyValidatedResources)", w)
				}
			}
			for c := range covered {
				if !want[c] {
					t.Errorf("the validating webhook covers %s, which policy.KeyValidatedResources does not list", c)
				}
			}
		})
	}
}

func namespaceLabels(name string, tenant bool) labels.Set {
	l := labels.Set{namespaceNameLabel: name}
	if tenant {
		l["sandbox-webhook.io/tenant"] = "true"
	}
	return l
}

// TestSandboxPodsMatchExactlyOneMutatingWebhook checks the objectSelector split: an
// objectSelector cannot say "sandbox label OR inject=true", so two webhooks with disjoint
// selectors must together send every sandbox pod exactly once and no other pod.
func TestSandboxPodsMatchExactlyOneMutatingWebhook(t *testing.T) {
	mut, _ := webhookConfigurations(t, build(t, "base"))
	cfg := policy.DefaultConfig()
	const hash, inject = "agents.x-k8s.io/sandbox-name-hash", "sandbox-webhook.io/inject"
	if cfg.Sandboxes.SandboxLabel != hash || cfg.Sandboxes.InjectLabel != inject {
		t.Fatalf("the default config's labels %s, %s are not those the webhook configuration selects on", cfg.Sandboxes.SandboxLabel, cfg.Sandboxes.InjectLabel)
	}
	for _, tt := range []struct {
		name   string
		labels labels.Set
		want   int
	}{
		{"sandbox-name-hash only", labels.Set{hash: "5d41402abc4b2a76"}, 1},
		{"inject=true only", labels.Set{inject: "true"}, 1},
		{"both", labels.Set{hash: "5d41402abc4b2a76", inject: "true"}, 1},
		{"sandbox-name-hash and inject=false", labels.Set{hash: "5d41402abc4b2a76", inject: "false"}, 0},
		{"inject=false only", labels.Set{inject: "false"}, 0},
		{"inject with another value", labels.Set{inject: "yes"}, 0},
		{"neither", labels.Set{"app": "web"}, 0},
		{"no labels", labels.Set{}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var matched []string
			for _, w := range mut.Webhooks {
				sel, err := metav1.LabelSelectorAsSelector(w.ObjectSelector)
				if err != nil {
					t.Fatalf("%s: objectSelector: %v", w.Name, err)
				}
				if w.ObjectSelector == nil || sel.Empty() {
					t.Fatalf("%s: no objectSelector: every pod in a tenant namespace would be sent", w.Name)
				}
				if sel.Matches(tt.labels) {
					matched = append(matched, w.Name)
				}
			}
			if len(matched) != tt.want {
				t.Errorf("labels %v match %v, want %d webhook(s)", tt.labels, matched, tt.want)
			}
			// The handler's own selection agrees with the configuration's.
			pod := &corev1.Pod{}
			pod.Labels = tt.labels
			if got := policy.IsSandboxPod(policy.NewInjectionPod(pod), cfg); got != (tt.want == 1) {
				t.Errorf("the handler's selection says sandbox pod = %v", got)
			}
		})
	}
}

// TestOnlyTheCertManagerOverlaysUseCertManager: the base is certificate-source neutral;
// every overlay issues the serving certificate with cert-manager and has it injected.
func TestOnlyTheCertManagerOverlaysUseCertManager(t *testing.T) {
	for _, f := range folders {
		t.Run(f.dir, func(t *testing.T) {
			objs := build(t, f.dir)
			mut, val := webhookConfigurations(t, objs)
			if f.dir == "base" {
				for _, o := range objs {
					if o.GroupVersionKind().Group == cmapi.SchemeGroupVersion.Group {
						t.Errorf("the base holds cert-manager's %s/%s", o.GetKind(), o.GetName())
					}
				}
				if mut.Annotations[injectCAAnnotation] != "" || val.Annotations[injectCAAnnotation] != "" {
					t.Error("the base's webhook configurations carry the inject-ca-from annotation")
				}
				return
			}
			checkCertManagerChain(t, objs)
			// cert-manager must be able to start while the webhook waits for its
			// certificate, so its namespace is never validated.
			for _, w := range val.Webhooks {
				sel, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
				if err != nil {
					t.Fatal(err)
				}
				if sel.Matches(namespaceLabels("cert-manager", false)) {
					t.Errorf("%s validates the cert-manager namespace", w.Name)
				}
				if !sel.Matches(namespaceLabels("tenant-a", false)) {
					t.Errorf("%s no longer validates an ordinary namespace", w.Name)
				}
			}
			for _, ann := range []string{mut.Annotations[injectCAAnnotation], val.Annotations[injectCAAnnotation]} {
				if ann != "sandbox-webhook-system/"+servingCertificate {
					t.Errorf("inject-ca-from %q does not name the serving Certificate", ann)
				}
			}
		})
	}
}

// checkCertManagerChain: self-signed Issuer -> CA Certificate -> CA Issuer -> serving
// Certificate for the Service's names, into the Secret the Deployment mounts.
func checkCertManagerChain(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	var serving cmapi.Certificate
	find(t, objs, "Certificate", servingCertificate, &serving)
	var svc corev1.Service
	find(t, objs, "Service", webhookServiceName, &svc)
	for _, want := range []string{svc.Name + "." + svc.Namespace + ".svc", svc.Name + "." + svc.Namespace + ".svc.cluster.local"} {
		if !slices.Contains(serving.Spec.DNSNames, want) {
			t.Errorf("the serving certificate names %v, not %s", serving.Spec.DNSNames, want)
		}
	}
	if serving.Spec.SecretName != servingCertSecret {
		t.Errorf("serving certificate secret %s, want %s", serving.Spec.SecretName, servingCertSecret)
	}
	if v := volume(t, deployment(t, objs), "serving-certs"); v.Secret == nil || v.Secret.SecretName != serving.Spec.SecretName {
		t.Errorf("the Deployment does not mount the serving certificate's Secret %s", serving.Spec.SecretName)
	}
	if serving.Spec.IsCA || serving.Spec.IssuerRef.Kind != "Issuer" {
		t.Errorf("the serving certificate must be a leaf from a namespaced Issuer: %+v", serving.Spec.IssuerRef)
	}
	var caIssuer cmapi.Issuer
	find(t, objs, "Issuer", serving.Spec.IssuerRef.Name, &caIssuer)
	if caIssuer.Spec.CA == nil {
		t.Fatalf("Issuer %s is not a CA issuer", caIssuer.Name)
	}
	var ca *cmapi.Certificate
	for _, o := range objs {
		var c cmapi.Certificate
		if o.GetKind() == "Certificate" {
			find(t, objs, "Certificate", o.GetName(), &c)
			if c.Spec.SecretName == caIssuer.Spec.CA.SecretName {
				ca = &c
			}
		}
	}
	if ca == nil || !ca.Spec.IsCA {
		t.Fatalf("no isCA Certificate writes the CA issuer's Secret %s", caIssuer.Spec.CA.SecretName)
	}
	var root cmapi.Issuer
	find(t, objs, "Issuer", ca.Spec.IssuerRef.Name, &root)
	if root.Spec.SelfSigned == nil {
		t.Errorf("the CA Certificate's Issuer %s is not self-signed", root.Name)
	}
	for _, o := range objs {
		if o.GroupVersionKind().Group == cmapi.SchemeGroupVersion.Group && o.GetNamespace() != svc.Namespace {
			t.Errorf("%s/%s is in namespace %q, not the webhook's", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
}
