package webhook

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// panickingReader fails the way a bug in a lookup would.
type panickingReader struct{ client.Reader }

func (panickingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	panic("lookup bug")
}

func (panickingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	panic("lookup bug")
}

func TestMutatingHandlerAnswers500OnAPanicAndKeepsServing(t *testing.T) {
	h := newTestInjector(t, policy.DefaultConfig(), panickingReader{})
	body := admissionReviewBody(t, benchPod(2<<10, 0))
	for range 2 {
		req := httptest.NewRequest(http.MethodPost, PathMutatePods, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500: %s", rec.Code, rec.Body)
		}
	}
}
