// Package loadbench measures the mutating webhook's CPU per request over HTTPS beside
// a null webhook that only decodes the pod with encoding/json, each in a process of its
// own so that its CPU is read from /proc without the client's.
package loadbench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/webhook"
)

// serverEnv makes the test binary a server: "mutating" or "null".
const serverEnv = "SANDBOX_WEBHOOK_LOADBENCH_SERVER"

func TestMain(m *testing.M) {
	if kind := os.Getenv(serverEnv); kind != "" {
		if err := serve(kind); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tenantReader answers as the manager's cache would for one tenant namespace with no
// inference credential.
type tenantReader struct{ ns corev1.Namespace }

func (r *tenantReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	ns, ok := obj.(*corev1.Namespace)
	if !ok || key.Name != r.ns.Name {
		return fmt.Errorf("unexpected Get of %T %s", obj, key)
	}
	*ns = r.ns
	return nil
}

func (r *tenantReader) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	if sl, ok := list.(*corev1.SecretList); ok {
		sl.Items = sl.Items[:0]
		return nil
	}
	return fmt.Errorf("unexpected List of %T", list)
}

// nullWebhook decodes the review and the pod with encoding/json and allows.
type nullWebhook struct{}

func (nullWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	var pod corev1.Pod
	if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
		http.Error(w, "bad pod", http.StatusBadRequest)
		return
	}
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&out)
}

// serve runs one server on a free loopback port, prints "port CA-file" and serves until
// stdin closes.
func serve(kind string) error {
	cfg := policy.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		return err
	}
	var h http.Handler = nullWebhook{}
	if kind == "mutating" {
		ns := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"sandbox-webhook.io/tenant": "true"}}}
		inj, err := webhook.NewSandboxPodInjector(cfg, &tenantReader{ns: ns}, prometheus.NewRegistry())
		if err != nil {
			return err
		}
		h = inj
	}
	bundle, err := certs.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(bundle.CertPEM, bundle.KeyPEM)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	caFile, err := os.CreateTemp("", "loadbench-ca-")
	if err != nil {
		return err
	}
	defer os.Remove(caFile.Name())
	if _, err := caFile.Write(bundle.CAPEM); err != nil {
		return err
	}
	caFile.Close()
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	fmt.Printf("%d %s\n", l.Addr().(*net.TCPAddr).Port, caFile.Name())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return srv.Close()
}

// server is a running server process.
type server struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
	http  *http.Client
}

func startServer(b *testing.B, kind string) *server {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverEnv+"="+kind, "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("%s server: %v", kind, err)
	}
	port, caFile, _ := strings.Cut(strings.TrimSpace(line), " ")
	ca, err := os.ReadFile(caFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	s := &server{cmd: cmd, stdin: stdin, url: "https://127.0.0.1:" + port + webhook.PathMutatePods + "?timeout=10s",
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}}}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	return s
}

// cpu is the process's user and system time.
func (s *server) cpu(b *testing.B) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: utime and stime are the
	// 12th and 13th of them, in clock ticks of 1/100 s.
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func (s *server) review(b *testing.B, body []byte) {
	resp, err := s.http.Post(s.url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte(`"allowed":true`)) {
		b.Errorf("%d %.200s", resp.StatusCode, answer)
	}
}

// sandboxPodReview is an 8 KiB sandbox pod as the API server sends it.
func sandboxPodReview(b *testing.B) []byte {
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "sandbox-a", Namespace: "team-a",
			Labels:      map[string]string{"agents.x-k8s.io/sandbox-name-hash": "7f9c2a"},
			Annotations: map[string]string{"openshell.io/sandbox-id": "0b8e6f0e-6c1d-4d7e-9a55-3f1c2d9e8b71"}},
		Spec: corev1.PodSpec{ServiceAccountName: "sandbox", Containers: []corev1.Container{{Name: "agent", Image: "agent:1"}}},
	}
	for i := 0; ; i++ {
		raw, _ := json.Marshal(pod)
		if len(raw) >= 8<<10 {
			break
		}
		pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%04d", i), Value: fmt.Sprintf("value-of-setting-%04d", i)})
	}
	raw, _ := json.Marshal(pod)
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "bench", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "team-a",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkMutatingCPUVersusNullWebhook sends the same 8 KiB sandbox pod to the
// mutating webhook and to the null webhook, alternately, from 8 concurrent clients over
// HTTP/2, and reports each server's CPU per request and their ratio.
func BenchmarkMutatingCPUVersusNullWebhook(b *testing.B) {
	body := sandboxPodReview(b)
	mutating, null := startServer(b, "mutating"), startServer(b, "null")
	for _, s := range []*server{mutating, null} { // connections and first-use costs
		for range 16 {
			s.review(b, body)
		}
	}
	m0, n0 := mutating.cpu(b), null.cpu(b)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			mutating.review(b, body)
			null.review(b, body)
		}
	})
	b.StopTimer()
	m, n := mutating.cpu(b)-m0, null.cpu(b)-n0
	perM := float64(m.Microseconds()) / float64(b.N)
	perN := float64(n.Microseconds()) / float64(b.N)
	b.ReportMetric(perM, "mutating-cpu-us/req")
	b.ReportMetric(perN, "null-cpu-us/req")
	if perN > 0 {
		b.ReportMetric(perM/perN, "ratio")
	}
}

// BenchmarkMutatingHandlerAlone is the handler without TLS or HTTP: decode, decide,
// encode.
func BenchmarkMutatingHandlerAlone(b *testing.B) {
	body := sandboxPodReview(b)
	cfg := policy.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	ns := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"sandbox-webhook.io/tenant": "true"}}}
	h, err := webhook.NewSandboxPodInjector(cfg, &tenantReader{ns: ns}, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, webhook.PathMutatePods, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Body)
		}
	}
}
