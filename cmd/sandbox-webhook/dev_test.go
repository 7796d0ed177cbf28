package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sandbox-webhook/sandbox-webhook/manifests"
)

func TestDevWebhookConfigurationsPointEveryWebhookAtTheProcess(t *testing.T) {
	path := func(s string) *string { return &s }
	service := func(p string) admissionv1.WebhookClientConfig {
		return admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Namespace: "ns", Name: "svc", Path: path(p)}}
	}
	url := "https://webhook.example:443/validate-private-keys"
	mutating := []*admissionv1.MutatingWebhookConfiguration{{
		ObjectMeta: metav1.ObjectMeta{Name: "m", Annotations: map[string]string{
			certManagerInjectAnnotation: "ns/cert", "keep": "me",
		}},
		Webhooks: []admissionv1.MutatingWebhook{
			{Name: "one", ClientConfig: service("/mutate-pods")},
			{Name: "two", ClientConfig: service("/mutate-pods")},
			{Name: "three", ClientConfig: service("/mutate-other")},
		},
	}}
	validating := []*admissionv1.ValidatingWebhookConfiguration{{
		ObjectMeta: metav1.ObjectMeta{Name: "v", Annotations: map[string]string{certManagerInjectAnnotation: "ns/cert"}},
		Webhooks:   []admissionv1.ValidatingWebhook{{Name: "keys", ClientConfig: admissionv1.WebhookClientConfig{URL: &url}}},
	}}
	ca := []byte("CA PEM")
	objs, err := devWebhookConfigurations(mutating, validating, "https://127.0.0.1:9999", ca)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("got %d objects, want 2", len(objs))
	}
	want := []string{"/mutate-pods", "/mutate-pods", "/mutate-other"}
	for i, w := range mutating[0].Webhooks {
		cc := w.ClientConfig
		if cc.Service != nil || cc.URL == nil || *cc.URL != "https://127.0.0.1:9999"+want[i] || string(cc.CABundle) != "CA PEM" {
			t.Errorf("mutating webhook %s: clientConfig %+v", w.Name, cc)
		}
	}
	if cc := validating[0].Webhooks[0].ClientConfig; *cc.URL != "https://127.0.0.1:9999/validate-private-keys" || string(cc.CABundle) != "CA PEM" {
		t.Errorf("validating webhook: clientConfig %+v", cc)
	}
	if _, ok := mutating[0].Annotations[certManagerInjectAnnotation]; ok || mutating[0].Annotations["keep"] != "me" {
		t.Errorf("mutating annotations %v: want the cert-manager one gone and the others kept", mutating[0].Annotations)
	}
	if _, ok := validating[0].Annotations[certManagerInjectAnnotation]; ok {
		t.Errorf("validating annotations %v: the cert-manager one is still there", validating[0].Annotations)
	}
	if got := describeWebhookConfiguration(objs[0]); got != "MutatingWebhookConfiguration m (3 webhooks)" {
		t.Errorf("describe = %q", got)
	}
	if got := describeWebhookConfiguration(objs[1]); got != "ValidatingWebhookConfiguration v (1 webhook)" {
		t.Errorf("describe = %q", got)
	}

	noPath := []*admissionv1.ValidatingWebhookConfiguration{{
		ObjectMeta: metav1.ObjectMeta{Name: "v"},
		Webhooks:   []admissionv1.ValidatingWebhook{{Name: "lost", ClientConfig: admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Name: "svc"}}}},
	}}
	if _, err := devWebhookConfigurations(nil, noPath, "https://127.0.0.1:1", ca); err == nil || !strings.Contains(err.Error(), "lost") {
		t.Errorf("a webhook without a path: err = %v, want one naming it", err)
	}
}

func TestDevWebhookConfigurationsOfTheShippedManifests(t *testing.T) {
	mutating, validating, err := manifests.WebhookConfigurations()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := devWebhookConfigurations(mutating, validating, "https://127.0.0.1:1", []byte("CA"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatal("no webhook configurations shipped")
	}
	for _, m := range mutating {
		for _, w := range m.Webhooks {
			if w.ClientConfig.URL == nil || w.ClientConfig.Service != nil {
				t.Errorf("%s: clientConfig %+v", w.Name, w.ClientConfig)
			}
		}
	}
	for _, v := range validating {
		for _, w := range v.Webhooks {
			if w.ClientConfig.URL == nil || w.ClientConfig.Service != nil {
				t.Errorf("%s: clientConfig %+v", w.Name, w.ClientConfig)
			}
		}
	}
}

func TestGatewayClusterRoleIsShipped(t *testing.T) {
	role, err := manifests.GatewayClusterRole()
	if err != nil {
		t.Fatal(err)
	}
	if role.Name != "openshell-gateway-node-reader" || len(role.Rules) == 0 {
		t.Errorf("ClusterRole %s with %d rules", role.Name, len(role.Rules))
	}
}

func TestDevSignalContextSurvivesASecondSignal(t *testing.T) {
	out := &syncWriter{w: &bytes.Buffer{}}
	ctx, stop := devSignalContext(out)
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("SIGINT did not cancel the context")
	}
	// The second one must not end the process: only the message says it arrived.
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(bufString(out), "already stopping") {
		if time.Now().After(deadline) {
			t.Fatalf("no word of the second signal; output:\n%s", bufString(out))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := bufString(out); !strings.HasPrefix(got, "dev: interrupt: stopping\n") {
		t.Errorf("output %q", got)
	}
}

func TestShortPath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		filepath.Join(wd, "bin", "k8s"):      filepath.Join("bin", "k8s"),
		"bin/k8s":                            "bin/k8s",
		filepath.Dir(wd):                     filepath.Dir(wd),
		filepath.Join(filepath.Dir(wd), "x"): filepath.Join(filepath.Dir(wd), "x"),
	} {
		if got := shortPath(in); got != want {
			t.Errorf("shortPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func bufString(w *syncWriter) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.(*bytes.Buffer).String()
}
