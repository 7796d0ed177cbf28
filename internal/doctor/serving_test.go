package doctor

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

// The serving checks of a webhook behind a Service, which envtest cannot run (no
// controllers, no pods), against a fake client holding the objects a cluster would.

const webhookNS = "sandbox-webhook-system"

func serviceRef() *admissionv1.ServiceReference {
	return &admissionv1.ServiceReference{Namespace: webhookNS, Name: "sandbox-webhook", Path: ptr.To("/mutate-pods"), Port: ptr.To[int32](443)}
}

func webhookService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: webhookNS, Name: "sandbox-webhook"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app.kubernetes.io/name": "sandbox-webhook"},
			Ports:    []corev1.ServicePort{{Name: "webhook", Port: 443, TargetPort: intstr.FromString("webhook")}},
		},
	}
}

func webhookDeployment(replicas, ready int32) *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": "sandbox-webhook"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: webhookNS, Name: "sandbox-webhook"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}},
		},
		Status: appsv1.DeploymentStatus{ReadyReplicas: ready},
	}
}

func endpointSlice(port int32, ready ...bool) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: webhookNS, Name: "sandbox-webhook-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: "sandbox-webhook"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("webhook"), Port: &port}},
	}
	for _, r := range ready {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(r)}})
	}
	return s
}

func fakeDoctor(objs ...client.Object) *doctor {
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objs...).WithStatusSubresource(&appsv1.Deployment{}).Build()
	return &doctor{c: c, cfg: policy.DefaultConfig(), opts: Options{Timeout: 2 * time.Second}, report: &Report{}}
}

func TestServingOfAHealthyService(t *testing.T) {
	d := fakeDoctor(webhookService(), webhookDeployment(2, 2), endpointSlice(9443, true, true))
	d.serving(context.Background(), target{service: serviceRef()})
	r := d.finish()
	expect(t, find(t, r, sectionServing, "Deployment sandbox-webhook-system/sandbox-webhook"), Passed, "2 of 2 replicas ready")
	expect(t, find(t, r, sectionServing, "Service sandbox-webhook-system/sandbox-webhook"), Passed, "2 ready endpoints")
	if !r.OK {
		t.Fatalf("report not OK:\n%s", text(r))
	}
}

func TestServingWithNoReadyReplicaFails(t *testing.T) {
	d := fakeDoctor(webhookService(), webhookDeployment(2, 0), endpointSlice(9443, false, false))
	d.serving(context.Background(), target{service: serviceRef()})
	r := d.finish()
	expect(t, find(t, r, sectionServing, "Deployment sandbox-webhook-system/sandbox-webhook"), Failed, "0 of 2 replicas ready", "kubectl -n sandbox-webhook-system logs deploy/sandbox-webhook")
	expect(t, find(t, r, sectionServing, "Service sandbox-webhook-system/sandbox-webhook"), Failed, "no ready endpoint (2 not ready)", "kubectl -n sandbox-webhook-system get pods -l app.kubernetes.io/name=sandbox-webhook")
	if r.OK {
		t.Fatal("report OK without a ready replica")
	}
}

func TestServingWithSomeReplicasReadyWarns(t *testing.T) {
	d := fakeDoctor(webhookService(), webhookDeployment(3, 1), endpointSlice(9443, true, false))
	d.serving(context.Background(), target{service: serviceRef()})
	r := d.finish()
	expect(t, find(t, r, sectionServing, "Deployment sandbox-webhook-system/sandbox-webhook"), Warned, "1 of 3 replicas ready")
	expect(t, find(t, r, sectionServing, "Service sandbox-webhook-system/sandbox-webhook"), Passed, "1 ready endpoint, 1 not ready")
}

func TestServingWithoutTheServiceFails(t *testing.T) {
	d := fakeDoctor()
	d.serving(context.Background(), target{service: serviceRef()})
	r := d.finish()
	expect(t, find(t, r, sectionServing, "Service"), Failed, "sandbox-webhook-system/sandbox-webhook", "kubectl apply -k")
	expect(t, find(t, r, sectionServing, "Deployment"), Skipped)
}

// Pod addresses are often unreachable from where doctor runs: the caBundle line warns
// and says how to reach the webhook, never fails falsely.
func TestCABundleOfAServiceWhosePodsCannotBeReachedWarns(t *testing.T) {
	port := int32(envtestutil.FreePort(t)) // nothing listens there
	d := fakeDoctor(webhookService(), endpointSlice(port, true))
	bundle := selfSignedCA(t)
	d.section = sectionConfigurations
	d.caBundle(context.Background(), "MutatingWebhookConfiguration sandbox-webhook", []liveWebhook{{
		name: "sandbox-pods.inject.sandbox-webhook.io", clientConfig: admissionv1.WebhookClientConfig{Service: serviceRef(), CABundle: bundle},
	}}, map[string]servedCert{})
	r := d.finish()
	expect(t, find(t, r, sectionConfigurations, "caBundle of MutatingWebhookConfiguration sandbox-webhook"), Warned,
		"dialing 127.0.0.1:"+strconv.Itoa(int(port)), "--webhook-address", "port-forward")
}

func TestEmptyCABundleFails(t *testing.T) {
	d := fakeDoctor()
	d.section = sectionConfigurations
	d.caBundle(context.Background(), "ValidatingWebhookConfiguration sandbox-webhook", []liveWebhook{{
		name: "pods.keys.sandbox-webhook.io", clientConfig: admissionv1.WebhookClientConfig{Service: serviceRef()},
	}}, map[string]servedCert{})
	r := d.finish()
	expect(t, find(t, r, sectionConfigurations, "caBundle of ValidatingWebhookConfiguration sandbox-webhook"), Failed, "caBundle is empty", "cainjector")
}

func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	b, err := certs.SelfSigned([]string{"sandbox-webhook.sandbox-webhook-system.svc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return b.CAPEM
}

// serveTLS serves bundle's certificate on a loopback port until the test ends.
func serveTLS(t *testing.T, b *certs.Bundle) int {
	t.Helper()
	pair, err := tls.X509KeyPair(b.CertPEM, b.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			_ = conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func TestCABundleVerifiesTheCertificateServedBehindTheService(t *testing.T) {
	serving, err := certs.SelfSigned([]string{"sandbox-webhook.sandbox-webhook-system.svc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	port := serveTLS(t, serving)
	webhook := []liveWebhook{{name: "sandbox-pods.inject.sandbox-webhook.io", clientConfig: admissionv1.WebhookClientConfig{Service: serviceRef(), CABundle: serving.CAPEM}}}

	d := fakeDoctor(webhookService(), endpointSlice(int32(port), true))
	d.section = sectionConfigurations
	d.caBundle(context.Background(), "MutatingWebhookConfiguration sandbox-webhook", webhook, map[string]servedCert{})
	expect(t, find(t, d.finish(), sectionConfigurations, "caBundle of MutatingWebhookConfiguration sandbox-webhook"), Passed,
		"verifies the certificate served at 127.0.0.1:"+strconv.Itoa(port)+" (sandbox-webhook.sandbox-webhook-system.svc, SHA256:")

	// The same through --webhook-address, as through a port-forward, with no endpoints known.
	d = fakeDoctor()
	d.opts.WebhookAddress = "127.0.0.1:" + strconv.Itoa(port)
	d.section = sectionConfigurations
	d.caBundle(context.Background(), "MutatingWebhookConfiguration sandbox-webhook", webhook, map[string]servedCert{})
	expect(t, find(t, d.finish(), sectionConfigurations, "caBundle of MutatingWebhookConfiguration sandbox-webhook"), Passed, "verifies")

	// A caBundle of another CA does not verify it.
	webhook[0].clientConfig.CABundle = selfSignedCA(t)
	d = fakeDoctor(webhookService(), endpointSlice(int32(port), true))
	d.section = sectionConfigurations
	d.caBundle(context.Background(), "MutatingWebhookConfiguration sandbox-webhook", webhook, map[string]servedCert{})
	expect(t, find(t, d.finish(), sectionConfigurations, "caBundle of MutatingWebhookConfiguration sandbox-webhook"), Failed, "does not verify with caBundle")
}

func TestNoTenantNamespaceWarnsAndSkipsTheDryRuns(t *testing.T) {
	plain := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}
	excluded := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", Labels: map[string]string{"sandbox-webhook.io/tenant": "true"}}}
	d := fakeDoctor(plain, excluded)
	d.endToEnd(context.Background(), d.tenants(context.Background()))
	r := d.finish()
	expect(t, find(t, r, "tenants", "tenant namespaces"), Warned, `no namespace matches tenants.namespaceSelector "sandbox-webhook.io/tenant=true"`, "kubectl label namespace <name> sandbox-webhook.io/tenant=true")
	expect(t, find(t, r, sectionEndToEnd, "dry-run sandbox pod"), Skipped, "no tenant namespace")
	if !r.OK {
		t.Errorf("no tenant is a warning, not a failure:\n%s", text(r))
	}
}
