package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/manifests"
)

// servedProcess is a running `sandbox-webhook serve`.
type servedProcess struct {
	cmd                       *exec.Cmd
	out                       *syncBuffer
	port, healthPort, metrics int
	certDir                   string
	done                      chan error
}

func startServe(t *testing.T, bundle *certs.Bundle) *servedProcess {
	t.Helper()
	dir := t.TempDir()
	p := &servedProcess{out: &syncBuffer{}, port: freePort(t), healthPort: freePort(t), metrics: freePort(t), certDir: filepath.Join(dir, "certs"), done: make(chan error, 1)}
	if err := bundle.WriteServing(p.certDir, "tls.crt", "tls.key"); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`apiVersion: sandbox-webhook.io/v1alpha1
kind: Config
server:
  namespace: sandbox-webhook-system
  port: %d
  certDir: %s
  metricsBindAddress: 127.0.0.1:%d
  healthProbeBindAddress: 127.0.0.1:%d
imagePullPolicy: IfNotPresent
`, p.port, p.certDir, p.metrics, p.healthPort)
	configPath := filepath.Join(dir, "config.yaml")
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	kubeconfig, err := cp.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{configPath: []byte(config), kubeconfigPath: kubeconfig} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.cmd = exec.Command(binary, "serve", "--config", configPath)
	p.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("serve output:\n%s", p.out.String())
		}
	})
	eventually(t, "serve reports ready", func() (bool, string) {
		select {
		case err := <-p.done:
			t.Fatalf("serve exited early: %v\n%s", err, p.out.String())
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.healthPort))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return p
}

// installWebhooks installs the base's webhook configurations pointed at the process.
func installWebhooks(t *testing.T, port int, caPEM []byte) {
	t.Helper()
	ctx := context.Background()
	url := func(cc admissionv1.WebhookClientConfig) admissionv1.WebhookClientConfig {
		u := fmt.Sprintf("https://127.0.0.1:%d%s", port, *cc.Service.Path)
		return admissionv1.WebhookClientConfig{URL: &u, CABundle: caPEM}
	}
	mutating, validating, err := manifests.WebhookConfigurations()
	if err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	for _, m := range mutating {
		for i := range m.Webhooks {
			m.Webhooks[i].ClientConfig = url(m.Webhooks[i].ClientConfig)
		}
		objs = append(objs, m)
	}
	for _, v := range validating {
		for i := range v.Webhooks {
			v.Webhooks[i].ClientConfig = url(v.Webhooks[i].ClientConfig)
		}
		objs = append(objs, v)
	}
	for _, obj := range objs {
		if err := cp.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), obj) })
	}
}

func createNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := cp.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func sandboxPod(ns, name string, env ...corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ns,
			Name:        name,
			Labels:      map[string]string{"agents.x-k8s.io/sandbox-name-hash": "abc123"},
			Annotations: map[string]string{"openshell.io/sandbox-id": name},
		},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: new(false),
			Containers:                   []corev1.Container{{Name: "agent", Image: "agent:dev", Env: env}},
		},
	}
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func servingFingerprint(port int) (string, error) {
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	return "SHA256:" + hex.EncodeToString(sum[:8]), nil
}

func TestServeBinaryAdmitsMutatesRejectsReconcilesAndReloadsCertificates(t *testing.T) {
	ctx := context.Background()
	createNamespace(t, "sandbox-webhook-system", nil)
	bundle, err := certs.SelfSigned([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, bundle)
	installWebhooks(t, p.port, bundle.CAPEM)

	createNamespace(t, "e2e-tenant", map[string]string{"sandbox-webhook.io/tenant": "true"})
	gw := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "e2e-tenant", Name: "openshell-gateway"}}
	if err := cp.Client.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}

	t.Run("a sandbox pod in a tenant namespace is stored with the injection", func(t *testing.T) {
		pod := sandboxPod("e2e-tenant", "sb-1", corev1.EnvVar{Name: "USE_VERTEX", Value: "1"})
		if err := cp.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		c := pod.Spec.Containers[0]
		if v, _ := envValue(c, "ACP_OPENSHELL_INFERENCE"); v != "false" {
			t.Errorf("ACP_OPENSHELL_INFERENCE = %q, want false (the tenant has no credential)", v)
		}
		if v, _ := envValue(c, "OPENSHELL_GATEWAY_ENDPOINT"); v != "openshell-gateway.e2e-tenant.svc.cluster.local:8080" {
			t.Errorf("gateway endpoint = %q", v)
		}
		if _, ok := envValue(c, "USE_VERTEX"); ok {
			t.Error("USE_VERTEX was kept; it bypasses the gateway")
		}
		if c.ImagePullPolicy != corev1.PullIfNotPresent {
			t.Errorf("imagePullPolicy = %q, want the configured IfNotPresent", c.ImagePullPolicy)
		}
		found := false
		for _, v := range pod.Spec.Volumes {
			if v.Name == "openshell-sa-token" && v.Projected != nil {
				found = true
			}
		}
		if !found || pod.Annotations["sandbox-webhook.io/injected"] == "" {
			t.Errorf("token volume or injected annotation missing: volumes=%v annotations=%v", pod.Spec.Volumes, pod.Annotations)
		}
	})

	t.Run("a pod with a private key in an env value is refused without echoing it", func(t *testing.T) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der := x509.MarshalPKCS1PrivateKey(key)
		keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}))
		createNamespace(t, "e2e-plain", nil)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "e2e-plain", Name: "leaky"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:dev", Env: []corev1.EnvVar{{Name: "TLS_KEY", Value: keyPEM}}}}},
		}
		err = cp.Client.Create(ctx, pod)
		if err == nil {
			t.Fatal("a pod embedding an RSA private key was admitted")
		}
		msg := err.Error()
		if !apierrors.IsForbidden(err) || !strings.Contains(msg, "spec.containers[0].env[0].value") || !strings.Contains(msg, "SHA256:") {
			t.Errorf("denial does not name the field and fingerprint: %v", err)
		}
		body := strings.Join(strings.Split(keyPEM, "\n")[1:3], "")
		for i := 0; i+8 <= len(body); i += 8 {
			if strings.Contains(msg, body[i:i+8]) {
				t.Fatalf("denial echoes key material")
			}
		}
	})

	t.Run("the tenancy reconciler binds the tenant gateway", func(t *testing.T) {
		eventually(t, "binding lists the e2e-tenant gateway", func() (bool, string) {
			crb := &rbacv1.ClusterRoleBinding{}
			if err := cp.Client.Get(ctx, client.ObjectKey{Name: "openshell-gateway-node-reader"}, crb); err != nil {
				return false, err.Error()
			}
			for _, s := range crb.Subjects {
				if s.Kind == "ServiceAccount" && s.Namespace == "e2e-tenant" && s.Name == "openshell-gateway" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("subjects %v", crb.Subjects)
		})
	})

	t.Run("metrics are served", func(t *testing.T) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.metrics))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`controller_runtime_webhook_requests_total{code="200",webhook="/mutate-pods"}`, `webhook="/validate-private-keys"`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("a rotated serving certificate is served without a restart", func(t *testing.T) {
		before, err := servingFingerprint(p.port)
		if err != nil {
			t.Fatal(err)
		}
		if before != certs.Fingerprint(bundle.CertPEM) {
			t.Fatalf("serving %s, want the written certificate %s", before, certs.Fingerprint(bundle.CertPEM))
		}
		next, err := certs.SelfSigned([]string{"127.0.0.1", "localhost"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := next.WriteServing(p.certDir, "tls.crt", "tls.key"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the new certificate is served", func() (bool, string) {
			got, err := servingFingerprint(p.port)
			if err != nil {
				return false, err.Error()
			}
			return got == certs.Fingerprint(next.CertPEM), got
		})
	})

	t.Run("SIGTERM stops it cleanly", func(t *testing.T) {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("serve exited with %v\n%s", err, p.out.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatal("serve did not stop after SIGTERM")
		}
		if strings.Contains(p.out.String(), "BEGIN RSA PRIVATE KEY") {
			t.Fatal("the log holds key material")
		}
	})
}
