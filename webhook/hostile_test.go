package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/hostile"
)

// allocatedBy is the bytes the Go heap allocated while f ran.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// checkWellFormedAnswer: the answer is an AdmissionReview or an HTTP error, short, and
// quotes nothing of the body. It returns the review's response, nil for an HTTP error.
func checkWellFormedAnswer(t *testing.T, name string, rec *httptest.ResponseRecorder) *admissionv1.AdmissionResponse {
	t.Helper()
	for _, quoted := range []string{"[[[[", `{"a":{"a"`, "{{{{", "\ufffd\ufffd", "not json", "aaaaaaaa"} {
		if strings.Contains(rec.Body.String(), quoted) {
			t.Errorf("%s: the answer quotes the input: %.300s", name, rec.Body)
		}
	}
	if rec.Body.Len() > 4096 {
		t.Errorf("%s: an answer of %d bytes", name, rec.Body.Len())
	}
	if rec.Code != http.StatusOK {
		if rec.Code < 400 {
			t.Errorf("%s: status %d", name, rec.Code)
		}
		return nil
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil {
		t.Fatalf("%s: not a review: %v %.300s", name, err, rec.Body)
	}
	return review.Response
}

func hostileHandlers(t testing.TB) map[string]http.Handler {
	cfg := policy.DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	v, err := NewKeyValidator(cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]http.Handler{
		PathMutatePods:          newTestInjector(t, cfg, &stubReader{namespaces: map[string]*corev1.Namespace{"team-a": tenantNamespace("team-a")}}),
		PathValidatePrivateKeys: v,
	}
}

func TestHostileReviewsGetAWellFormedAnswerInMemoryLinearInTheirSize(t *testing.T) {
	// The mutating webhook admits a pod it can read (20,000 env vars are a pod; a pod
	// with 300,000 labels is no sandbox pod) and refuses the rest; the validating
	// webhook inspects every well-formed object and may admit it or deny it.
	admitted := map[string]bool{"20,000 env vars": true, "300,000 labels": true, "3M braces in an env value": true}
	for _, f := range hostile.KeyFloods() {
		admitted[f.Name+" flood"] = true // a ConfigMap is no pod
	}
	// The body buffer doubles as bytes arrive (twice the body at most), the pod's
	// strings are copied once, and jsontext's duplicate-name set for an object of many
	// members costs most: about 16 bytes allocated per byte of a flood of members.
	const perByte, fixed = 20, 8 << 20
	for path, h := range hostileHandlers(t) {
		for _, review := range hostile.Reviews() {
			name, body := review.Name, review.Body
			var rec *httptest.ResponseRecorder
			alloc := allocatedBy(func() {
				req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec = httptest.NewRecorder()
				h.ServeHTTP(rec, req)
			})
			t.Logf("%s %s: %d bytes, %d allocated (%.1fx), answer %.160s", path, name, len(body), alloc, float64(alloc)/float64(len(body)), rec.Body)
			resp := checkWellFormedAnswer(t, path+" "+name, rec)
			decided := path == PathValidatePrivateKeys && (review.Pod || review.ConfigMap)
			switch {
			case resp == nil:
				t.Errorf("%s %s: an HTTP error for a review that arrived whole: %.300s", path, name, rec.Body)
			case path == PathMutatePods && resp.Allowed != admitted[name]:
				t.Errorf("%s %s: allowed %v, want %v: %.300s", path, name, resp.Allowed, admitted[name], rec.Body)
			case !decided && path == PathValidatePrivateKeys && resp.Allowed:
				t.Errorf("%s %s: allowed what cannot be read: %.300s", path, name, rec.Body)
			}
			if limit := uint64(perByte*len(body) + fixed); alloc > limit {
				t.Errorf("%s %s: allocated %d bytes for a body of %d, over %d", path, name, alloc, len(body), limit)
			}
		}
	}
}

// lyingBody announces more than it sends.
type lyingBody struct{ sent bool }

func (b *lyingBody) Read(p []byte) (int, error) {
	if b.sent {
		return 0, io.ErrUnexpectedEOF
	}
	b.sent = true
	p[0] = '{'
	return 1, nil
}

func TestAnnouncedLengthIsNotAllocatedBeforeTheBytesArrive(t *testing.T) {
	for path, h := range hostileHandlers(t) {
		var rec *httptest.ResponseRecorder
		alloc := allocatedBy(func() {
			req := httptest.NewRequest(http.MethodPost, path, &lyingBody{})
			req.ContentLength = maxReviewBytes
			req.Header.Set("Content-Type", "application/json")
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, req)
		})
		if alloc > 1<<20 {
			t.Errorf("%s: %d bytes allocated for a body of one byte that announced %d", path, alloc, maxReviewBytes)
		}
		if !strings.Contains(rec.Body.String(), "reading the request") {
			t.Errorf("%s: %s", path, rec.Body)
		}
	}
}

// FuzzReviewCostIsLinear: whatever the bytes, both handlers answer with a review or an
// HTTP error and allocate at most a small multiple of the body.
func FuzzReviewCostIsLinear(f *testing.F) {
	for _, r := range hostile.Reviews() {
		if len(r.Body) < 64<<10 {
			f.Add(r.Body)
		}
	}
	f.Add(hostile.SandboxPodReview(`{"containers":[{"name":"agent","env":[{"name":"CLAUDE_CODE_USE_VERTEX","value":"1"},{"value":"x","name":"A"}]}]}`))
	f.Add(hostile.SandboxPodReview(`{"containers":[` + strings.Repeat(`{"name":"a","volumeMounts":[{"name":"openshell-sa-token","mountPath":"/x"}]},`, 50) + `{}]}`))
	f.Add(hostile.Nesting(4096, `{"a":`))
	f.Add(hostile.ConfigMapReview(`-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----`))
	handlers := hostileHandlers(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for path, h := range handlers {
			var rec *httptest.ResponseRecorder
			alloc := allocatedBy(func() {
				req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec = httptest.NewRecorder()
				h.ServeHTTP(rec, req)
			})
			if limit := uint64(20*len(body) + 8<<20); alloc > limit {
				t.Fatalf("%s: allocated %d bytes for a body of %d, over %d", path, alloc, len(body), limit)
			}
			if rec.Code == http.StatusOK {
				var review admissionv1.AdmissionReview
				if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil {
					t.Fatalf("%s: not a review: %v %.300s", path, err, rec.Body)
				}
			} else if rec.Code < 400 {
				t.Fatalf("%s: status %d", path, rec.Code)
			}
		}
	})
}
