// Package loadbench measures the mutating webhook's CPU per request over HTTPS beside
// a null webhook that only decodes the pod with encoding/json, each in a process of its
// own so that its CPU is read from /proc without the client's.
package loadbench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
	"github.com/sandbox-webhook/sandbox-webhook/test/nullwebhook"
	"github.com/sandbox-webhook/sandbox-webhook/webhook"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"slices"
	"sync"
	"sync/atomic"
)

var (
	cp     *envtestutil.ControlPlane
	binary string
)

func TestMain(m *testing.M) {
	nullwebhook.Hook()
	// Benchmarks only: a plain test run has nothing here to start a control plane for.
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	var cleanup func()
	var err error
	binary, cleanup, err = envtestutil.BuildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := envtestutil.Run(m, envtestutil.Options{}, &cp)
	cleanup()
	os.Exit(code)
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

// target is one endpoint under load and the process that answers it.
type target struct {
	name   string
	url    string
	pid    int
	client *http.Client
	body   []byte
	// over is the target whose CPU per request this one is compared with.
	over string
	cpu  time.Duration
	n    int
	lat  []time.Duration
}

// round sends n requests from c concurrent clients and adds their latencies and the
// process's CPU to t.
func (t *target) round(b *testing.B, n, c int) {
	before, err := envtestutil.ProcCPU(t.pid)
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				start := time.Now()
				resp, err := t.client.Post(t.url, "application/json", bytes.NewReader(t.body))
				if err != nil {
					b.Error(err)
					return
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(start)
				if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte(`"allowed":true`)) {
					b.Errorf("%s: %d %.200s", t.name, resp.StatusCode, answer)
					return
				}
			}
		})
	}
	wg.Wait()
	after, err := envtestutil.ProcCPU(t.pid)
	if err != nil {
		b.Fatal(err)
	}
	t.cpu += after - before
	t.n += n
	t.lat = append(t.lat, lat...)
}

func percentile(lat []time.Duration, p float64) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkLoad measures serve's two webhooks over HTTPS (HTTP/2, as the API server
// calls them) beside the null webhooks, in interleaved rounds: each iteration is one
// round of every target at each concurrency. It reports CPU per request (from /proc),
// p50 and p99 latency, the ratios to the nulls, and serve's peak RSS.
//
//	make bench-load
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	ns := envtestutil.NamespaceObject("team-a", map[string]string{"sandbox-webhook.io/tenant": "true"})
	if err := cp.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	serve, err := envtestutil.StartServe(cp, binary, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(serve.Stop)
	null := nullwebhook.Start(b)
	body := sandboxPodReview(b)
	for _, c := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			targets := []*target{
				{name: "mutating", url: serve.URL(webhook.PathMutatePods) + "?timeout=5s", pid: serve.Cmd.Process.Pid, client: serve.Client, body: body, over: "null-pod"},
				{name: "null-pod", url: null.Base + nullwebhook.PathPod, pid: null.PID, client: null.HTTP, body: body},
				{name: "validating", url: serve.URL(webhook.PathValidatePrivateKeys) + "?timeout=5s", pid: serve.Cmd.Process.Pid, client: serve.Client, body: body, over: "null-envelope"},
				{name: "null-envelope", url: null.Base + nullwebhook.PathEnvelope, pid: null.PID, client: null.HTTP, body: body},
			}
			n := max(1500, 40*c)
			for _, t := range targets { // connections and first-use costs
				t.round(b, 2*c, c)
				t.cpu, t.n, t.lat = 0, 0, nil
			}
			b.ResetTimer()
			for b.Loop() {
				for _, t := range targets {
					t.round(b, n, c)
				}
			}
			b.StopTimer()
			perReq := map[string]float64{}
			for _, t := range targets {
				perReq[t.name] = float64(t.cpu.Microseconds()) / float64(t.n)
				b.ReportMetric(perReq[t.name], t.name+"-cpu-us/req")
				b.ReportMetric(float64(percentile(t.lat, 0.50).Microseconds()), t.name+"-p50-us")
				b.ReportMetric(float64(percentile(t.lat, 0.99).Microseconds()), t.name+"-p99-us")
			}
			for _, t := range targets {
				if t.over != "" && perReq[t.over] > 0 {
					b.ReportMetric(perReq[t.name]/perReq[t.over], t.name+"/"+t.over)
				}
			}
			b.ReportMetric(float64(envtestutil.ProcStatus(serve.Cmd.Process.Pid, "VmHWM")>>20), "serve-peak-rss-MiB")
		})
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
