package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// overlay is the default deployment, the one the README installs.
const overlay = "overlays/cert-manager"

// served is a running `sandbox-webhook serve`.
type served struct {
	cmd                   *exec.Cmd
	out                   *syncBuffer
	port, health, metrics int
	certDir               string
	done                  chan error
	exited                atomic.Bool
}

// shippedConfig is the config file of the overlay's generated ConfigMap.
func shippedConfig(t *testing.T, objs []*unstructured.Unstructured) []byte {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "ConfigMap" || !strings.HasPrefix(o.GetName(), "sandbox-webhook-config") {
			continue
		}
		data, _, _ := unstructured.NestedStringMap(o.Object, "data")
		if c, ok := data["config.yaml"]; ok {
			return []byte(c)
		}
	}
	t.Fatalf("%s renders no sandbox-webhook-config ConfigMap with config.yaml", overlay)
	return nil
}

// startServe runs serve with the shipped config file; flags move the ports, the
// certificate folder and the shutdown delay to what a local process needs.
func startServe(t *testing.T, bundle *certs.Bundle, config []byte) *served {
	t.Helper()
	dir := t.TempDir()
	p := &served{out: &syncBuffer{}, port: freePort(t), health: freePort(t), metrics: freePort(t), certDir: filepath.Join(dir, "certs"), done: make(chan error, 1)}
	if err := bundle.WriteServing(p.certDir, "tls.crt", "tls.key"); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := cp.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	configPath, kubeconfigPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "kubeconfig")
	for path, data := range map[string][]byte{configPath: config, kubeconfigPath: kubeconfig} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.cmd = exec.Command(binary, "serve", "--config", configPath, "--kubeconfig", kubeconfigPath,
		fmt.Sprintf("--port=%d", p.port), "--cert-dir", p.certDir,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", p.metrics),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", p.health),
		"--shutdown-delay=10s") // a wide window to observe /readyz failing while it still serves
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { err := p.cmd.Wait(); p.exited.Store(true); p.done <- err }()
	t.Cleanup(func() {
		if !p.exited.Load() {
			_ = p.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("serve output:\n%s", p.out.String())
		}
	})
	eventually(t, "serve reports ready", func() (bool, string) {
		if p.exited.Load() {
			t.Fatalf("serve exited early:\n%s", p.out.String())
		}
		code, err := p.probe("/readyz")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprint(code)
	})
	return p
}

func (p *served) probe(path string) (int, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p.health, path))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// installRendered creates the overlay's webhook configurations, each webhook's service
// reference replaced by the local process's URL and the CA cert-manager would inject.
func installRendered(t *testing.T, objs []*unstructured.Unstructured, port int, caPEM []byte) {
	t.Helper()
	local := func(cc *admissionregv1.WebhookClientConfig) {
		if cc.Service == nil || cc.Service.Path == nil {
			t.Fatalf("webhook clientConfig %+v has no service path", cc)
		}
		u := fmt.Sprintf("https://127.0.0.1:%d%s", port, *cc.Service.Path)
		*cc = admissionregv1.WebhookClientConfig{URL: &u, CABundle: caPEM}
	}
	n := 0
	for _, o := range objs {
		var obj client.Object
		switch o.GetKind() {
		case "MutatingWebhookConfiguration":
			m := &admissionregv1.MutatingWebhookConfiguration{}
			convert(t, o, m)
			for i := range m.Webhooks {
				local(&m.Webhooks[i].ClientConfig)
			}
			obj = m
		case "ValidatingWebhookConfiguration":
			v := &admissionregv1.ValidatingWebhookConfiguration{}
			convert(t, o, v)
			for i := range v.Webhooks {
				local(&v.Webhooks[i].ClientConfig)
			}
			obj = v
		default:
			continue
		}
		if err := cp.Client.Create(context.Background(), obj); err != nil {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		n++
		t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), obj) })
	}
	if n != 2 {
		t.Fatalf("%s renders %d webhook configurations, want 2", overlay, n)
	}
}

func convert(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		t.Fatal(err)
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
			ServiceAccountName:           "default",
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

func injected(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == "openshell-sa-token" && v.Projected != nil {
			return pod.Annotations["sandbox-webhook.io/injected"] != ""
		}
	}
	return false
}

// fingerprintOf is the certificate a new connection to port is served, verified by pool.
func fingerprintOf(port int, pool *x509.CertPool) (string, error) {
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	return "SHA256:" + hex.EncodeToString(sum[:8]), nil
}

// review is an AdmissionReview for creating a sandbox pod, as the API server sends it.
func review(t *testing.T, ns, name string) []byte {
	t.Helper()
	raw, err := json.Marshal(sandboxPod(ns, name))
	if err != nil {
		t.Fatal(err)
	}
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("uid-" + name),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns, Name: name, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// checkReviewResponse reads a webhook's answer and insists on an allowed mutation.
func checkReviewResponse(resp *http.Response, uid string) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("decoding the review: %w", err)
	}
	if out.Response == nil || string(out.Response.UID) != uid || !out.Response.Allowed || len(out.Response.Patch) == 0 {
		return fmt.Errorf("not an allowed mutation for %s: %s", uid, body)
	}
	return nil
}

// errorLog keeps the first few errors of a load run.
type errorLog struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (e *errorLog) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.first) < 5 {
		e.first = append(e.first, fmt.Sprintf(format, args...))
	}
}

func (e *errorLog) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return fmt.Sprintf("%d errors, first: %s", e.n, strings.Join(e.first, " | "))
}

func TestServeWithTheRenderedManifests(t *testing.T) {
	ctx := context.Background()
	objs := render(t, overlay)
	config := shippedConfig(t, objs)
	cfg, err := policy.ParseConfig(config)
	if err != nil {
		t.Fatalf("the shipped config does not load: %v", err)
	}
	createNamespace(t, cfg.Server.Namespace, nil)
	hosts := certs.ServiceHosts("sandbox-webhook", cfg.Server.Namespace, "cluster.local")
	bundle, err := certs.SelfSigned(hosts, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle.CAPEM)
	p := startServe(t, bundle, config)
	installRendered(t, objs, p.port, bundle.CAPEM)

	const tenant = "e2e-tenant"
	createNamespace(t, tenant, map[string]string{"sandbox-webhook.io/tenant": "true"})
	gw := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: cfg.Tenancy.ServiceAccountName}}
	if err := cp.Client.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}

	t.Run("health, readiness and TLS 1.2 as the floor", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, err := p.probe(path); err != nil || code != http.StatusOK {
				t.Errorf("%s: %d %v", path, code, err)
			}
		}
		old := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS11}
		if conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.port), old); err == nil {
			conn.Close()
			t.Error("a TLS 1.1 handshake succeeded")
		}
		if _, err := fingerprintOf(p.port, pool); err != nil {
			t.Errorf("a TLS 1.2+ client verified by the CA cannot connect: %v", err)
		}
		if !strings.HasPrefix(strings.TrimSpace(p.out.String()), "{") {
			t.Errorf("off a terminal serve logs JSON; it wrote: %.200s", p.out.String())
		}
	})

	t.Run("a sandbox pod is injected through the API server", func(t *testing.T) {
		pod := sandboxPod(tenant, "sb-1", corev1.EnvVar{Name: "USE_VERTEX", Value: "1"})
		if err := cp.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		c := pod.Spec.Containers[0]
		if v, _ := envValue(c, "ACP_OPENSHELL_INFERENCE"); v != "false" {
			t.Errorf("ACP_OPENSHELL_INFERENCE = %q, want false (no credential)", v)
		}
		if v, _ := envValue(c, "OPENSHELL_GATEWAY_ENDPOINT"); v != "openshell-gateway."+tenant+".svc.cluster.local:8080" {
			t.Errorf("gateway endpoint = %q", v)
		}
		if _, ok := envValue(c, "USE_VERTEX"); ok {
			t.Error("USE_VERTEX was kept; it bypasses the gateway")
		}
		if !injected(pod) {
			t.Errorf("token volume or injected annotation missing: %v %v", pod.Spec.Volumes, pod.Annotations)
		}
		plain := sandboxPod(tenant, "not-a-sandbox")
		plain.Labels = nil
		if err := cp.Client.Create(ctx, plain); err != nil {
			t.Fatal(err)
		}
		if injected(plain) {
			t.Error("a pod that is no sandbox was injected")
		}
	})

	t.Run("a pod with a private key is refused with the finding", func(t *testing.T) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
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
		for _, want := range []string{"spec.containers[0].env[0].value", "TLS_KEY", "SHA256:"} {
			if !strings.Contains(msg, want) {
				t.Errorf("denial lacks %q: %s", want, msg)
			}
		}
		body := strings.Join(strings.Split(keyPEM, "\n")[1:4], "")
		for i := 0; i+8 <= len(body); i += 8 {
			if strings.Contains(msg, body[i:i+8]) || strings.Contains(p.out.String(), body[i:i+8]) {
				t.Fatal("the denial or the log holds key material")
			}
		}
	})

	t.Run("the binding gains the tenant's gateway", func(t *testing.T) {
		eventually(t, "binding lists the tenant gateway", func() (bool, string) {
			crb := &rbacv1.ClusterRoleBinding{}
			if err := cp.Client.Get(ctx, client.ObjectKey{Name: cfg.Tenancy.BindingName}, crb); err != nil {
				return false, err.Error()
			}
			for _, s := range crb.Subjects {
				if s.Kind == "ServiceAccount" && s.Namespace == tenant && s.Name == cfg.Tenancy.ServiceAccountName {
					return true, ""
				}
			}
			return false, fmt.Sprintf("subjects %v", crb.Subjects)
		})
	})

	t.Run("metrics: controller-runtime's and ours", func(t *testing.T) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.metrics))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`controller_runtime_webhook_requests_total{code="200",webhook="/mutate-pods"}`,
			`webhook="/validate-private-keys"`,
			`sandbox_webhook_pod_injections_total`,
			`sandbox_webhook_private_key_rejections_total`,
			`sandbox_webhook_tenancy_`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})

	t.Run("certificates rotate under load without a failed request", func(t *testing.T) {
		var apiOK, directOK atomic.Int64
		errs := &errorLog{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		// Pods created through the API server, which keeps its connections open.
		for w := range 2 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					pod := sandboxPod(tenant, fmt.Sprintf("rot-%d-%d", w, i))
					if err := cp.Client.Create(ctx, pod); err != nil {
						errs.add("API server create: %v", err)
					} else if !injected(pod) {
						errs.add("pod %s stored without injection", pod.Name)
					} else {
						apiOK.Add(1)
					}
				}
			})
		}
		// Reviews sent straight to the webhook, each on a new connection.
		direct := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
		for w := range 2 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("direct-%d-%d", w, i)
					resp, err := direct.Post(fmt.Sprintf("https://127.0.0.1:%d/mutate-pods", p.port), "application/json", strings.NewReader(string(review(t, tenant, name))))
					if err == nil {
						err = checkReviewResponse(resp, "uid-"+name)
					}
					if err != nil {
						errs.add("direct review: %v", err)
					} else {
						directOK.Add(1)
					}
				}
			})
		}
		current := bundle
		for round := 1; round <= 3; round++ {
			next, err := current.Renew(hosts, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if err := next.WriteServing(p.certDir, "tls.crt", "tls.key"); err != nil {
				t.Fatal(err)
			}
			want := certs.Fingerprint(next.CertPEM)
			eventually(t, fmt.Sprintf("round %d: new connections present the renewed certificate", round), func() (bool, string) {
				got, err := fingerprintOf(p.port, pool)
				if err != nil {
					return false, err.Error()
				}
				return got == want, got
			})
			// Let requests flow on the new certificate before the next rotation.
			a, d := apiOK.Load(), directOK.Load()
			eventually(t, fmt.Sprintf("round %d: requests succeed after the rotation", round), func() (bool, string) {
				return apiOK.Load() >= a+10 && directOK.Load() >= d+10, fmt.Sprintf("api %d direct %d", apiOK.Load(), directOK.Load())
			})
			current = next
		}
		close(stop)
		wg.Wait()
		if errs.n > 0 {
			t.Errorf("requests failed during rotation: %s", errs.String())
		}
		t.Logf("3 rotations: %d pods created through the API server, %d reviews on new connections, no failure", apiOK.Load(), directOK.Load())
	})

	t.Run("SIGTERM: readiness drops, requests in flight finish, exit 0", func(t *testing.T) {
		// A request the server has started reading when the shutdown begins.
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.port), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		body := review(t, tenant, "in-flight")
		// The API server's longest timeout: serve bounds the reading of a review by it, and
		// this body stays half-sent through the 10s shutdown delay.
		if _, err := fmt.Fprintf(conn, "POST /mutate-pods?timeout=30s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(body[:len(body)/2]); err != nil {
			t.Fatal(err)
		}

		// A burst of creations through the API server that runs on past the shutdown.
		var created atomic.Int64
		var refused atomic.Int64
		errs := &errorLog{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; i < 2000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					pod := sandboxPod(tenant, fmt.Sprintf("burst-%d-%d", w, i))
					err := cp.Client.Create(ctx, pod)
					switch {
					case err == nil && injected(pod):
						created.Add(1)
					case err == nil:
						errs.add("pod %s stored without injection", pod.Name)
					case strings.Contains(err.Error(), "connection refused"):
						// After the listener closed: a new connection, refused; the
						// API server refuses the pod (failurePolicy Fail).
						refused.Add(1)
					default:
						errs.add("create %s: %v", pod.Name, err)
					}
				}
			})
		}
		eventually(t, "the burst is under way", func() (bool, string) { return created.Load() >= 5, fmt.Sprint(created.Load()) })
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		eventually(t, "/readyz fails while the webhook still serves", func() (bool, string) {
			code, err := p.probe("/readyz")
			if err != nil {
				t.Fatalf("the health server went away before /readyz reported the shutdown: %v", err)
			}
			return code != http.StatusOK, fmt.Sprint(code)
		})
		if _, err := fingerprintOf(p.port, pool); err != nil {
			t.Errorf("during the shutdown delay new connections must still be served: %v", err)
		}
		eventually(t, "the listener closes", func() (bool, string) {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.port))
			if err != nil {
				return errors.Is(err, syscall.ECONNREFUSED), err.Error()
			}
			c.Close()
			return false, "still accepting"
		})
		// The listener is closed; the request in flight still gets its answer.
		if _, err := conn.Write(body[len(body)/2:]); err != nil {
			t.Fatalf("finishing the request in flight: %v", err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("the request in flight got no answer: %v", err)
		}
		if err := checkReviewResponse(resp, "uid-in-flight"); err != nil {
			t.Errorf("the request in flight: %v", err)
		}
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("serve exited with %v", err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatal("serve did not exit after SIGTERM")
		}
		close(stop)
		wg.Wait()
		if errs.n > 0 {
			t.Errorf("creations failed other than by a refused new connection: %s", errs.String())
		}
		if created.Load() < 5 {
			t.Errorf("only %d pods created in the burst", created.Load())
		}
		for _, want := range []string{"shutting down", "closing the listener", "stopped"} {
			if !strings.Contains(p.out.String(), want) {
				t.Errorf("the log lacks %q", want)
			}
		}
		t.Logf("burst: %d pods created and injected, %d refused after the listener closed", created.Load(), refused.Load())
	})
}
