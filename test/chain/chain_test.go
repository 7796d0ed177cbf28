package chain

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

// The user extra keys the API server puts on a token bound to a pod.
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

// namespace creates a namespace (a tenant when tenant is set) holding the gateway
// ServiceAccount and the sandbox pods' ServiceAccount "sandbox".
func namespace(t *testing.T, prefix string, tenant bool) string {
	t.Helper()
	ctx := context.Background()
	var labels map[string]string
	if tenant {
		labels = map[string]string{"sandbox-webhook.io/tenant": "true"}
	}
	ns := envtestutil.NamespaceObject(prefix+"-"+rand.String(5), labels)
	if err := cp.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), ns) })
	for _, name := range []string{cfg.Tenancy.ServiceAccountName, "sandbox"} {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name}}
		if err := cp.Client.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
	}
	return ns.Name
}

// sandboxPod creates a sandbox pod as the agent-sandbox controller would and returns it
// as stored, after the webhook.
func sandboxPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels: map[string]string{cfg.Sandboxes.SandboxLabel: "5d41402abc4b2a76"},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName:           "sandbox",
			AutomountServiceAccountToken: &no,
			Containers:                   []corev1.Container{{Name: "agent", Image: "example.invalid/agent:1"}},
		},
	}
	if err := cp.Client.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// projection is the injected serviceAccountToken projection of pod.
func projection(t *testing.T, pod *corev1.Pod) *corev1.ServiceAccountTokenProjection {
	t.Helper()
	if pod.Annotations[policy.AnnotationInjected] == "" {
		t.Fatalf("pod %s/%s was not injected: annotations %v", pod.Namespace, pod.Name, pod.Annotations)
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == cfg.Token.VolumeName && v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					return s.ServiceAccountToken
				}
			}
		}
	}
	t.Fatalf("pod %s/%s has no projected token volume %s", pod.Namespace, pod.Name, cfg.Token.VolumeName)
	return nil
}

// mintToken asks for a token as the kubelet does for a projected volume: a TokenRequest
// on the pod's ServiceAccount with the projection's audience and expiry, bound to the pod.
func mintToken(t *testing.T, pod *corev1.Pod, audience string, expirationSeconds int64) string {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(cp.Config)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{audience},
		ExpirationSeconds: &expirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	got, err := cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(context.Background(), pod.Spec.ServiceAccountName, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	if got.Status.Token == "" {
		t.Fatal("TokenRequest returned no token")
	}
	return got.Status.Token
}

// tokenLifetime is exp-iat of a JWT, in seconds, read from the token itself.
func tokenLifetime(t *testing.T, token string) int64 {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT (%d parts)", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Exp, Iat int64 }
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Exp - claims.Iat
}

// reviewAs creates a TokenReview of token for the gateway's audience, impersonating the
// gateway ServiceAccount of namespace ns.
func reviewAs(ns, token string) (*authenticationv1.TokenReview, error) {
	c := rest.CopyConfig(cp.Config)
	c.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + cfg.Tenancy.ServiceAccountName,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, err
	}
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{
		Token: token, Audiences: []string{cfg.Token.Audience},
	}}
	return cs.AuthenticationV1().TokenReviews().Create(context.Background(), review, metav1.CreateOptions{})
}

// awaitReview retries reviewAs until the gateway may create TokenReviews: the
// reconciler binds a new tenant's gateway a moment after it appears.
func awaitReview(t *testing.T, ns, token string) *authenticationv1.TokenReview {
	t.Helper()
	var review *authenticationv1.TokenReview
	envtestutil.Eventually(t, "gateway of "+ns+" may create a TokenReview", func() (bool, string) {
		r, err := reviewAs(ns, token)
		if err != nil {
			return false, err.Error()
		}
		review = r
		return true, ""
	})
	return review
}

func bindingHas(ns string) (bool, string) {
	crb := &rbacv1.ClusterRoleBinding{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Name: cfg.Tenancy.BindingName}, crb); err != nil {
		return false, err.Error()
	}
	return slices.ContainsFunc(crb.Subjects, func(s rbacv1.Subject) bool {
		return s.Kind == rbacv1.ServiceAccountKind && s.Namespace == ns && s.Name == cfg.Tenancy.ServiceAccountName
	}), ""
}

func TestTenantGatewayAuthenticatesTheTokenOfItsInjectedSandboxPod(t *testing.T) {
	ns := namespace(t, "tenant-a", true)
	pod := sandboxPod(t, ns, "sandbox-a")
	proj := projection(t, pod)
	if proj.Audience != cfg.Token.Audience || proj.ExpirationSeconds == nil || *proj.ExpirationSeconds != cfg.Token.ExpirationSeconds {
		t.Fatalf("projection %+v, want audience %s and expirationSeconds %d", proj, cfg.Token.Audience, cfg.Token.ExpirationSeconds)
	}
	token := mintToken(t, pod, proj.Audience, *proj.ExpirationSeconds)
	if got := tokenLifetime(t, token); got != *proj.ExpirationSeconds {
		t.Errorf("token lifetime (exp-iat) %ds, want the projection's %ds", got, *proj.ExpirationSeconds)
	}

	review := awaitReview(t, ns, token)
	st := review.Status
	if !st.Authenticated {
		t.Fatalf("token of %s/%s not authenticated by the gateway: %q", ns, pod.Name, st.Error)
	}
	if want := "system:serviceaccount:" + ns + ":sandbox"; st.User.Username != want {
		t.Errorf("username %q, want %q", st.User.Username, want)
	}
	if got := st.User.Extra[extraPodName]; len(got) != 1 || got[0] != pod.Name {
		t.Errorf("extra %s = %v, want [%s]", extraPodName, got, pod.Name)
	}
	if got := st.User.Extra[extraPodUID]; len(got) != 1 || got[0] != string(pod.UID) {
		t.Errorf("extra %s = %v, want [%s]", extraPodUID, got, pod.UID)
	}
	if !slices.Contains(st.Audiences, cfg.Token.Audience) {
		t.Errorf("review audiences %v, want %s among them", st.Audiences, cfg.Token.Audience)
	}
}

func TestTokenForAnotherAudienceIsNotAuthenticated(t *testing.T) {
	ns := namespace(t, "tenant-aud", true)
	pod := sandboxPod(t, ns, "sandbox-aud")
	proj := projection(t, pod)
	token := mintToken(t, pod, "some-other-service", *proj.ExpirationSeconds)
	review := awaitReview(t, ns, token)
	if review.Status.Authenticated {
		t.Fatalf("a token for audience some-other-service was authenticated for %s as %q", cfg.Token.Audience, review.Status.User.Username)
	}
}

func TestTokenOfADeletedPodIsNotAuthenticated(t *testing.T) {
	ns := namespace(t, "tenant-del", true)
	pod := sandboxPod(t, ns, "sandbox-del")
	proj := projection(t, pod)
	token := mintToken(t, pod, proj.Audience, *proj.ExpirationSeconds)
	if r := awaitReview(t, ns, token); !r.Status.Authenticated {
		t.Fatalf("token not authenticated while its pod exists: %q", r.Status.Error)
	}
	zero := int64(0)
	if err := cp.Client.Delete(context.Background(), pod, &client.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	envtestutil.Eventually(t, "the token of a deleted pod is refused", func() (bool, string) {
		r, err := reviewAs(ns, token)
		if err != nil {
			return false, err.Error()
		}
		return !r.Status.Authenticated, "still authenticated as " + r.Status.User.Username
	})
}

func TestGatewayOfANamespaceThatIsNoTenantIsRefused(t *testing.T) {
	tenant := namespace(t, "tenant-n", true)
	outsider := namespace(t, "outsider", false)
	pod := sandboxPod(t, tenant, "sandbox-n")
	proj := projection(t, pod)
	token := mintToken(t, pod, proj.Audience, *proj.ExpirationSeconds)
	// The tenant's gateway being bound shows the reconciler has run since outsider appeared.
	if r := awaitReview(t, tenant, token); !r.Status.Authenticated {
		t.Fatalf("tenant gateway: token not authenticated: %q", r.Status.Error)
	}
	if ok, _ := bindingHas(outsider); ok {
		t.Fatalf("ClusterRoleBinding %s lists the gateway of %s, which is no tenant", cfg.Tenancy.BindingName, outsider)
	}
	_, err := reviewAs(outsider, token)
	if !apierrors.IsForbidden(err) {
		t.Fatalf("gateway of non-tenant %s creating a TokenReview: got %v, want Forbidden", outsider, err)
	}
}

func TestGatewayOfANamespaceThatStopsBeingATenantIsRefused(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "tenant-b", true)
	pod := sandboxPod(t, ns, "sandbox-b")
	proj := projection(t, pod)
	token := mintToken(t, pod, proj.Audience, *proj.ExpirationSeconds)
	if r := awaitReview(t, ns, token); !r.Status.Authenticated {
		t.Fatalf("token not authenticated while %s is a tenant: %q", ns, r.Status.Error)
	}

	obj := &corev1.Namespace{}
	if err := cp.Client.Get(ctx, client.ObjectKey{Name: ns}, obj); err != nil {
		t.Fatal(err)
	}
	delete(obj.Labels, "sandbox-webhook.io/tenant")
	if err := cp.Client.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	envtestutil.Eventually(t, "the reconciler drops the gateway of "+ns+" from the binding", func() (bool, string) {
		has, why := bindingHas(ns)
		if why != "" {
			return false, why
		}
		return !has, "still listed"
	})
	envtestutil.Eventually(t, "the gateway of former tenant "+ns+" is refused", func() (bool, string) {
		_, err := reviewAs(ns, token)
		if err == nil {
			return false, "TokenReview still allowed"
		}
		return apierrors.IsForbidden(err), err.Error()
	})
}
