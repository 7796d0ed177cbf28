// Package nullwebhook is the reference the benchmarks measure serve against: admission
// webhooks that do the least a webhook written the usual way does, over HTTPS with
// HTTP/2 as the API server calls them, in a process of their own so that their CPU is
// read from /proc without the caller's.
//
// The benchmark's test binary is the null webhook process: its TestMain calls Hook
// first, and Start runs the binary again with Env set.
package nullwebhook

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

// Env makes the test binary the null webhook.
const Env = "SANDBOX_WEBHOOK_NULL_WEBHOOK"

// Paths the null webhook answers.
const (
	// PathPod decodes the review and the pod with encoding/json and allows.
	PathPod = "/pod"
	// PathEnvelope decodes only the review, the object kept as raw JSON, and allows.
	PathEnvelope = "/envelope"
	// PathCalls answers with the number of reviews answered so far.
	PathCalls = "/calls"
)

// Hook serves as the null webhook and exits when Env is set; otherwise it returns.
// TestMain calls it first.
func Hook() {
	if os.Getenv(Env) == "" {
		return
	}
	if err := serve(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

var calls atomic.Int64

// pod decodes the review and the pod with encoding/json and allows: the least a
// mutating webhook written the usual way does.
func pod(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	var p corev1.Pod
	if err := json.Unmarshal(review.Request.Object.Raw, &p); err != nil {
		http.Error(w, "bad pod", http.StatusBadRequest)
		return
	}
	allow(w, &review)
}

// envelope decodes only the review, the object kept as raw JSON, and allows: the least
// a validating webhook does before it looks at the object.
func envelope(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	allow(w, &review)
}

func allow(w http.ResponseWriter, review *admissionv1.AdmissionReview) {
	calls.Add(1)
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&out)
}

// serve runs the null webhook on a free loopback port over TLS, prints "port CA-file"
// and serves until stdin closes.
func serve() error {
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
	caFile, err := os.CreateTemp("", "nullwebhook-ca-")
	if err != nil {
		return err
	}
	defer os.Remove(caFile.Name())
	if _, err := caFile.Write(bundle.CAPEM); err != nil {
		return err
	}
	caFile.Close()
	mux := http.NewServeMux()
	mux.HandleFunc(PathPod, pod)
	mux.HandleFunc(PathEnvelope, envelope)
	mux.HandleFunc(PathCalls, func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, calls.Load())
	})
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	fmt.Printf("%d %s\n", l.Addr().(*net.TCPAddr).Port, caFile.Name())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return srv.Close()
}

// Server is a running null webhook process.
type Server struct {
	PID int
	// Base is its https://127.0.0.1:port.
	Base string
	// CA is the PEM of the CA that signed its certificate.
	CA []byte
	// HTTP is a client that trusts it.
	HTTP *http.Client
}

// Start runs the test binary as the null webhook until the benchmark ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), Env+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("null webhook: %v", err)
	}
	port, caFile, _ := strings.Cut(strings.TrimSpace(line), " ")
	ca, err := os.ReadFile(caFile)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &Server{PID: cmd.Process.Pid, Base: "https://127.0.0.1:" + port, CA: ca,
		HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}}}
}

// Calls is the number of reviews the null webhook has answered.
func (s *Server) Calls(tb testing.TB) int64 {
	body, err := envtestutil.Fetch(s.HTTP, s.Base+PathCalls)
	if err != nil {
		tb.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
	if err != nil {
		tb.Fatalf("null webhook %s: %q", PathCalls, body)
	}
	return n
}
