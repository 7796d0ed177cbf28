package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// memoryTestRequests are requests whose responses hold strings of the request: a
// single removed env var is the audit annotation itself, spec.serviceAccount is a
// patch value, escaped strings are unquoted, denials quote the pod.
func memoryTestRequests(t *testing.T) map[string][]byte {
	t.Helper()
	legacy := benchPod(0, 3)
	legacy.Spec.ServiceAccountName = ""
	legacy.Spec.DeprecatedServiceAccount = "legacy-<sa>"
	legacy.Spec.Containers[0].Env = append(legacy.Spec.Containers[0].Env,
		corev1.EnvVar{Name: "USE_VERTEX", Value: "<yes> & \u2028 é"},
		corev1.EnvVar{Name: "ANTHROPIC_VERTEX_PROJECT_ID", Value: "p"})
	legacy.Labels["team"] = "ünïcode"

	denied := benchPod(0, 2)
	denied.Spec.Volumes = append(denied.Spec.Volumes, corev1.Volume{Name: policy.DefaultConfig().Token.VolumeName})
	denied.Spec.Containers[0].VolumeMounts = append(denied.Spec.Containers[0].VolumeMounts,
		corev1.VolumeMount{Name: "other-<name>", MountPath: policy.DefaultConfig().Token.MountPath})

	plain := benchPod(0, 1)
	plain.Labels = map[string]string{"app": "web"}

	return map[string][]byte{
		"8KiB sandbox pod":         admissionReviewBody(t, benchPod(8<<10, 0)),
		"legacy service account":   admissionReviewBody(t, legacy),
		"denied":                   admissionReviewBody(t, denied),
		"not a sandbox":            admissionReviewBody(t, plain),
		"invalid JSON":             []byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"x","object":{"metadata":{"labels":{"a":1}}}}`),
		"not a pod":                []byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"y","kind":{"kind":"Secret"},"operation":"CREATE","object":{"data":{}}}}`),
		"no review":                []byte(`{"kind":"Other","apiVersion":"v1"}`),
		"pod with an escaped name": bytes.Replace(admissionReviewBody(t, benchPod(0, 4)), []byte(`"SETTING_0001"`), []byte(`"SETTING_\u0030\u0030\u0030\u0031"`), 1),
	}
}

func memoryTestInjector(t *testing.T) *SandboxPodInjector {
	cfg := policy.DefaultConfig()
	// As the server does: validating parses the tenant selector once, before requests
	// share the config.
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return newTestInjector(t, cfg, &stubReader{
		namespaces: map[string]*corev1.Namespace{"team-a": tenantNamespace("team-a")},
		secrets: []corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "anthropic", Labels: map[string]string{cfg.Inference.ProviderLabel: "anthropic"}},
			Data:       map[string][]byte{"api-key": []byte("placeholder-api-key-value")},
		}},
	})
}

// serveReview answers body; an unknown length makes the handler read in pieces.
func serveReview(h http.Handler, body []byte, unknownLength bool) *httptest.ResponseRecorder {
	var r io.Reader = bytes.NewReader(body)
	if unknownLength {
		r = iotest.HalfReader(r)
	}
	req := httptest.NewRequest(http.MethodPost, PathMutatePods, r)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// wantResponses are the responses of Handle, which shares no memory between requests,
// to the reviews that decode, and of a handler that never served another request to
// the others.
func wantResponses(t *testing.T, requests map[string][]byte) map[string]string {
	want := map[string]string{}
	for name, body := range requests {
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err == nil && review.Request != nil && !strings.Contains(name, "invalid") {
			rec := httptest.NewRecorder()
			writeReview(rec, review.Request.UID, memoryTestInjector(t).Handle(context.Background(), admission.Request{AdmissionRequest: *review.Request}))
			want[name] = rec.Body.String()
		} else {
			want[name] = serveReview(memoryTestInjector(t), body, false).Body.String()
		}
		if !strings.Contains(want[name], `"response":{"uid":`) {
			t.Fatalf("%s: no review: %s", name, want[name])
		}
	}
	return want
}

func TestServeHTTPAnswersEachRequestAsAFreshHandlerWhileReusingMemory(t *testing.T) {
	requests := memoryTestRequests(t)
	want := wantResponses(t, requests)
	h := memoryTestInjector(t)
	var names []string
	for name := range requests {
		names = append(names, name)
	}
	// Each round serves every request once, in an order of its own, and checks the
	// responses only after the round: a response must not change when a later request
	// reuses the memory of its own.
	for round := range 2 * len(names) {
		got := map[string]*httptest.ResponseRecorder{}
		for k := range names {
			name := names[(k*(round+1)+round)%len(names)]
			if _, done := got[name]; done {
				continue
			}
			got[name] = serveReview(h, requests[name], (round+k)%2 == 0)
		}
		for name, rec := range got {
			if rec.Body.String() != want[name] {
				t.Fatalf("round %d, %s:\n got %s\nwant %s", round, name, rec.Body, want[name])
			}
		}
	}
}

func TestServeHTTPAnswersConcurrentRequestsAsAFreshHandler(t *testing.T) {
	requests := memoryTestRequests(t)
	want := wantResponses(t, requests)
	h := memoryTestInjector(t)
	var names []string
	for name := range requests {
		names = append(names, name)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := range 40 {
				name := names[(g+i)%len(names)]
				if got := serveReview(h, requests[name], i%3 == 0).Body.String(); got != want[name] {
					errs <- fmt.Errorf("%s:\n got %s\nwant %s", name, got, want[name])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServeHTTPRefusesBodiesLargerThanTheLimit(t *testing.T) {
	h := memoryTestInjector(t)
	for _, c := range []struct {
		size int
		want string
	}{
		{maxReviewBytes, "decoding the admission review"},
		{maxReviewBytes + 1, fmt.Sprintf("request larger than %d bytes", maxReviewBytes)},
		{maxReviewBytes + 4096, fmt.Sprintf("request larger than %d bytes", maxReviewBytes)},
	} {
		body := bytes.Repeat([]byte(" "), c.size)
		for _, unknownLength := range []bool{false, true} {
			got := serveReview(h, body, unknownLength).Body.String()
			if !strings.Contains(got, c.want) || !strings.Contains(got, `"allowed":false`) {
				t.Errorf("%d bytes (unknown length %v): %s, want %q", c.size, unknownLength, got, c.want)
			}
		}
	}
}

// pollingReader answers a List only once its context has ended, and never calls
// Done: the lookup's bound must not depend on a timer.
type pollingReader struct{ stubReader }

func (r *pollingReader) List(ctx context.Context, _ client.ObjectList, _ ...client.ListOption) error {
	for ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	return ctx.Err()
}

func TestSandboxPodInjectorBoundsALookupThatOnlyPollsItsContext(t *testing.T) {
	cfg := policy.DefaultConfig()
	cfg.Inference.LookupTimeout.Duration = 50 * time.Millisecond
	h := newTestInjector(t, cfg, &pollingReader{stubReader{namespaces: map[string]*corev1.Namespace{"team-a": tenantNamespace("team-a")}}})
	start := time.Now()
	resp := h.Handle(context.Background(), podRequest(t, openShellSandboxPod("team-a", "s")))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	if !resp.Allowed {
		t.Fatalf("denied: %+v", resp.Result)
	}
	if got := patchedEnv(t, resp, cfg.Inference.Env); got != "false" {
		t.Errorf("inference = %q, want false", got)
	}
	if !strings.Contains(strings.Join(resp.Warnings, "\n"), "no answer within 50ms") {
		t.Errorf("warnings: %q", resp.Warnings)
	}
}

func TestLookupContextEndsAsContextWithTimeoutDoes(t *testing.T) {
	t.Run("deadline without Done", func(t *testing.T) {
		c := newLookupContext(context.Background(), 20*time.Millisecond)
		defer c.stop()
		if d, ok := c.Deadline(); !ok || time.Until(d) > 20*time.Millisecond {
			t.Errorf("deadline %v %v", d, ok)
		}
		if err := c.Err(); err != nil {
			t.Fatalf("err before the deadline: %v", err)
		}
		time.Sleep(30 * time.Millisecond)
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err after the deadline: %v", err)
		}
		select {
		case <-c.Done():
		case <-time.After(time.Second):
			t.Fatal("Done open after the deadline")
		}
		c.stop()
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err after stop: %v", err)
		}
	})
	t.Run("deadline with Done", func(t *testing.T) {
		c := newLookupContext(context.Background(), 20*time.Millisecond)
		defer c.stop()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done open after the deadline")
		}
		if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err: %v", err)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		c := newLookupContext(context.Background(), time.Hour)
		c.stop()
		if err := c.Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("err: %v", err)
		}
		select {
		case <-c.Done():
		default:
			t.Error("Done open after stop")
		}
	})
	t.Run("request ended", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		c := newLookupContext(parent, time.Hour)
		defer c.stop()
		done := c.Done()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Done open after the request ended")
		}
		if err := c.Err(); !errors.Is(err, context.Canceled) {
			t.Errorf("err: %v", err)
		}
	})
	t.Run("earlier deadline of the request", func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := newLookupContext(parent, time.Hour)
		defer c.stop()
		if d, _ := c.Deadline(); time.Until(d) > time.Minute {
			t.Errorf("deadline %v, after the request's", d)
		}
	})
}

func TestCredentialLookupSelectorIsTheSelectorOfHasLabels(t *testing.T) {
	cfg := policy.DefaultConfig()
	var want, got client.ListOptions
	want.ApplyOptions([]client.ListOption{client.HasLabels{cfg.Inference.ProviderLabel}})
	got.ApplyOptions([]client.ListOption{client.MatchingLabelsSelector{Selector: credentialLookupSelector(cfg)}})
	if got.LabelSelector.String() != want.LabelSelector.String() || got.LabelSelector.String() == "" {
		t.Errorf("selector %q, want %q", got.LabelSelector, want.LabelSelector)
	}
}
