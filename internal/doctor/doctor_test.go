package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

const apiKeyValue = "sk-ant-doctor-test-value-0001"

func runDoctor(t *testing.T, ns string) *Report {
	t.Helper()
	return Run(context.Background(), cp.Client, cfg, Options{Namespace: ns})
}

func find(t *testing.T, r *Report, section, name string) Check {
	t.Helper()
	for _, ch := range r.Checks {
		if ch.Section == section && ch.Name == name {
			return ch
		}
	}
	t.Fatalf("no check %q in section %q; report:\n%s", name, section, text(r))
	return Check{}
}

func text(r *Report) string {
	var b bytes.Buffer
	p := &TextPrinter{W: &b}
	for _, ch := range r.Checks {
		p.Print(ch)
	}
	p.Summary(r)
	return b.String()
}

func expect(t *testing.T, ch Check, status Status, contains ...string) {
	t.Helper()
	if ch.Status != status {
		t.Errorf("%s / %s: status %s, want %s: %s", ch.Section, ch.Name, ch.Status, status, ch.Message)
	}
	for _, c := range contains {
		if !strings.Contains(ch.Message+" fix: "+ch.Fix, c) {
			t.Errorf("%s / %s: %q (fix %q) does not mention %q", ch.Section, ch.Name, ch.Message, ch.Fix, c)
		}
	}
}

// namespace creates a namespace, a tenant when tenant is set, with the gateway
// ServiceAccount when gateway is set.
func namespace(t *testing.T, prefix string, tenant, gateway bool) string {
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
	if gateway {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: cfg.Tenancy.ServiceAccountName}}
		if err := cp.Client.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
	}
	return ns.Name
}

func credential(t *testing.T, ns, provider, key string, value []byte) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: provider, Labels: map[string]string{cfg.Inference.ProviderLabel: provider}},
		Data:       map[string][]byte{key: value},
	}
	if err := cp.Client.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func TestHealthyTenantPassesEveryCheck(t *testing.T) {
	ns := namespace(t, "healthy", true, true)
	credential(t, ns, "anthropic", "api-key", []byte(apiKeyValue))

	// The reconciler binds the gateway, and the webhook's cache sees the Secret, a
	// moment after they appear.
	var r *Report
	envtestutil.Eventually(t, "doctor passes on a healthy tenant", func() (bool, string) {
		r = runDoctor(t, ns)
		return r.OK && find(t, r, sectionEndToEnd, "dry-run sandbox pod").Status == Passed, text(r)
	})
	t.Logf("report:\n%s", text(r))

	expect(t, find(t, r, sectionConfigurations, "MutatingWebhookConfiguration sandbox-webhook"), Passed, "2 webhooks as shipped", "failurePolicy Fail", "timeoutSeconds 5")
	expect(t, find(t, r, sectionConfigurations, "ValidatingWebhookConfiguration sandbox-webhook"), Passed, "as shipped")
	expect(t, find(t, r, sectionConfigurations, "caBundle of MutatingWebhookConfiguration sandbox-webhook"), Passed, "verifies the certificate served at 127.0.0.1:")
	expect(t, find(t, r, sectionConfigurations, "caBundle of ValidatingWebhookConfiguration sandbox-webhook"), Passed, "verifies")
	// envtest reaches the webhook by URL, as dev does: no Deployment or Service to check.
	expect(t, find(t, r, sectionServing, "Deployment"), Skipped, "reached by URL https://127.0.0.1:")
	expect(t, find(t, r, sectionServing, "Service endpoints"), Skipped, "reached by URL")

	section := "tenant " + ns
	expect(t, find(t, r, section, "namespace"), Passed, "labelled as a tenant")
	expect(t, find(t, r, section, "gateway ServiceAccount"), Passed, ns+"/openshell-gateway")
	expect(t, find(t, r, section, "binding"), Passed, "ClusterRoleBinding openshell-gateway-node-reader")
	expect(t, find(t, r, section, "TokenReview allowed"), Passed, "system:serviceaccount:"+ns+":openshell-gateway may create tokenreviews")
	expect(t, find(t, r, section, "inference credential"), Passed, "usable: Secret \"anthropic\"", "ACP_OPENSHELL_INFERENCE=true")
	expect(t, find(t, r, sectionEndToEnd, "dry-run sandbox pod"), Passed, "injected in "+ns, "audience openshell-gateway", "ACP_OPENSHELL_INFERENCE=true (usable)")
	expect(t, find(t, r, sectionEndToEnd, "dry-run pod with a private key"), Passed, "was refused without echoing it", "SHA256:")
	if r.Summary.Failed != 0 || r.Summary.Skipped != 2 {
		t.Errorf("summary %+v, want no failure and the two serving lines skipped", r.Summary)
	}

	var out bytes.Buffer
	if err := WriteJSON(&out, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), apiKeyValue) || strings.Contains(text(r), apiKeyValue) {
		t.Fatal("the report contains the credential's value")
	}
	var doc struct {
		Cluster *string          `json:"cluster"`
		Checks  []map[string]any `json:"checks"`
		Summary map[string]int   `json:"summary"`
		OK      *bool            `json:"ok"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OK == nil || !*doc.OK || len(doc.Checks) != len(r.Checks) {
		t.Fatalf("JSON: ok %v, %d checks; want ok true and %d checks", doc.OK, len(doc.Checks), len(r.Checks))
	}
	for _, k := range []string{"passed", "warned", "failed", "skipped"} {
		if _, ok := doc.Summary[k]; !ok {
			t.Errorf("JSON summary has no %q: %v", k, doc.Summary)
		}
	}
	for _, ch := range doc.Checks {
		for _, k := range []string{"section", "name", "status", "message"} {
			if s, _ := ch[k].(string); s == "" {
				t.Errorf("JSON check without %q: %v", k, ch)
			}
		}
	}
}

func TestNamespaceThatIsNoTenantFails(t *testing.T) {
	ns := namespace(t, "plain", false, true)
	r := runDoctor(t, ns)
	if r.OK {
		t.Fatalf("doctor passed a namespace that is no tenant:\n%s", text(r))
	}
	expect(t, find(t, r, "tenant "+ns, "namespace"), Failed, "does not match tenants.namespaceSelector", "kubectl label namespace "+ns+" sandbox-webhook.io/tenant=true")
	expect(t, find(t, r, sectionEndToEnd, "dry-run sandbox pod"), Skipped, "no tenant namespace")
}

func TestTenantWithoutGatewayServiceAccountFails(t *testing.T) {
	ns := namespace(t, "nogateway", true, false)
	r := runDoctor(t, ns)
	section := "tenant " + ns
	expect(t, find(t, r, section, "namespace"), Passed)
	expect(t, find(t, r, section, "gateway ServiceAccount"), Failed, "not found", "kubectl -n "+ns+" create serviceaccount openshell-gateway")
	expect(t, find(t, r, section, "binding"), Failed, "is not a subject of ClusterRoleBinding openshell-gateway-node-reader")
	expect(t, find(t, r, section, "TokenReview allowed"), Failed, "may not create tokenreviews", "Unauthenticated")
	expect(t, find(t, r, section, "inference credential"), Passed, "none", "ACP_OPENSHELL_INFERENCE=false")
	if r.OK || r.Summary.Failed != 3 {
		t.Errorf("summary %+v, OK %v: want exactly the three failures above", r.Summary, r.OK)
	}
	for _, ch := range r.Checks {
		if (ch.Status == Failed || ch.Status == Warned) && ch.Fix == "" {
			t.Errorf("%s / %s has no fix", ch.Section, ch.Name)
		}
	}
}

func TestIncompatibleCredentialWarnsWithTheWebhooksReason(t *testing.T) {
	ns := namespace(t, "authuser", true, true)
	value := []byte(`{"type":"authorized_user","client_id":"x.apps.example","client_secret":"doctor-secret-value-0002","refresh_token":"1//doctor-refresh-0003"}`)
	credential(t, ns, "google-vertex-ai", "credentials.json", value)
	r := runDoctor(t, ns)
	expect(t, find(t, r, "tenant "+ns, "inference credential"), Warned, "incompatible", "authorized_user", "ACP_OPENSHELL_INFERENCE=false", "service_account")
	var out bytes.Buffer
	_ = WriteJSON(&out, r)
	for _, secret := range []string{"doctor-secret-value-0002", "doctor-refresh-0003"} {
		if strings.Contains(out.String(), secret) {
			t.Fatal("the report contains a value of the credential")
		}
	}
}

func TestChangedWebhookConfigurationFails(t *testing.T) {
	ctx := context.Background()
	live := &admissionv1.ValidatingWebhookConfiguration{}
	if err := cp.Client.Get(ctx, client.ObjectKey{Name: "sandbox-webhook"}, live); err != nil {
		t.Fatal(err)
	}
	original := live.DeepCopy()
	t.Cleanup(func() {
		cur := &admissionv1.ValidatingWebhookConfiguration{}
		if err := cp.Client.Get(context.Background(), client.ObjectKey{Name: "sandbox-webhook"}, cur); err == nil {
			original.ResourceVersion = cur.ResourceVersion
			if err := cp.Client.Update(context.Background(), original); err != nil {
				t.Errorf("restoring the configuration: %v", err)
			}
		}
	})
	other, err := certs.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ignore := admissionv1.Ignore
	var thirty int32 = 30
	live.Webhooks[0].FailurePolicy = &ignore
	live.Webhooks[0].TimeoutSeconds = &thirty
	live.Webhooks[0].ClientConfig.CABundle = other.CAPEM
	if err := cp.Client.Update(ctx, live); err != nil {
		t.Fatal(err)
	}
	r := runDoctor(t, "")
	name := live.Webhooks[0].Name
	expect(t, find(t, r, sectionConfigurations, "ValidatingWebhookConfiguration sandbox-webhook"), Failed,
		"webhook "+name+": failurePolicy Ignore, shipped Fail", "timeoutSeconds 30, shipped 5", "kubectl apply -k")
	expect(t, find(t, r, sectionConfigurations, "caBundle of ValidatingWebhookConfiguration sandbox-webhook"), Failed,
		"does not verify with caBundle", "different CAs")
	expect(t, find(t, r, sectionConfigurations, "MutatingWebhookConfiguration sandbox-webhook"), Passed)
	if r.OK {
		t.Fatal("report OK with a changed configuration")
	}
}

func TestUnreachableAPIServerFailsAtOnce(t *testing.T) {
	c, err := client.New(&rest.Config{Host: "https://127.0.0.1:" + strconv.Itoa(envtestutil.FreePort(t))}, client.Options{Scheme: cp.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	r := Run(context.Background(), c, cfg, Options{})
	if r.OK || len(r.Checks) != 1 {
		t.Fatalf("want one failed line, got:\n%s", text(r))
	}
	expect(t, r.Checks[0], Failed, "cannot read", "--kubeconfig")
	if !slices.ContainsFunc(r.Checks, func(ch Check) bool { return ch.Name == "API server" }) {
		t.Errorf("the failed line is not the API server's: %+v", r.Checks[0])
	}
}
