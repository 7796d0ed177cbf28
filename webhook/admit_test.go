package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sandbox-webhook/sandbox-webhook/test/hostile"
)

// closeSignalBody is a request body that says when the handler closes it.
type closeSignalBody struct {
	*io.PipeReader
	once   sync.Once
	closed chan struct{}
}

func (b *closeSignalBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return b.PipeReader.Close()
}

// TestServerShutdownDoesNotCutReviewsInFlight: the webhook server cancels every
// request's context when its shutdown begins (controller-runtime's server derives them
// from the context it runs in). A review whose body is still arriving then must still
// be read to the end, decided and answered with its uid: the API server refuses the
// object of an answer without it.
func TestServerShutdownDoesNotCutReviewsInFlight(t *testing.T) {
	bodies := map[string][]byte{
		PathMutatePods:          hostile.SandboxPodReview(`{"containers":[{"name":"agent","image":"agent:1"}]}`),
		PathValidatePrivateKeys: hostile.ConfigMapReview(`a setting, not a key`),
	}
	for path, h := range hostileHandlers(t) {
		t.Run(path, func(t *testing.T) {
			body := bodies[path]
			ctx, shutdown := context.WithCancel(context.Background())
			defer shutdown()
			pr, pw := io.Pipe()
			rb := &closeSignalBody{PipeReader: pr, closed: make(chan struct{})}
			req := httptest.NewRequest(http.MethodPost, path+"?timeout=10s", rb).WithContext(ctx)
			req.ProtoMajor, req.ProtoMinor = 2, 0 // the API server's protocol: the body is closed at the deadline
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			answered := make(chan struct{})
			go func() {
				defer close(answered)
				h.ServeHTTP(rec, req)
			}()
			if _, err := pw.Write(body[:len(body)/2]); err != nil {
				t.Fatal(err)
			}
			shutdown()
			// Give a handler that wrongly ties the body to the request's context the
			// chance to close it; a correct one never does.
			select {
			case <-rb.closed:
				t.Fatal("the handler closed the body when the server's shutdown began")
			case <-time.After(300 * time.Millisecond):
			}
			if _, err := pw.Write(body[len(body)/2:]); err != nil {
				t.Fatalf("writing the rest of the review: %v", err)
			}
			pw.Close()
			<-answered
			resp := checkWellFormedAnswer(t, path, rec)
			if resp == nil {
				t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
			}
			if resp.UID != "hostile" || !resp.Allowed {
				t.Errorf("uid %q, allowed %v, result %+v: want the review's uid and an allowed object", resp.UID, resp.Allowed, resp.Result)
			}
		})
	}
}
