package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandbox-webhook/sandbox-webhook/internal/collectors"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// The API server sends its timeout for the call as the query parameter "timeout"
// (from the webhook configuration's timeoutSeconds, 1 to 30 seconds). A caller that
// sends none gets the API server's default.
const (
	defaultReviewTimeout = 10 * time.Second
	maxReviewTimeout     = 30 * time.Second
)

// reviewContext is the review's context, ending a little before the caller gives up,
// so that the answer arrives in time. The body must arrive by then too.
//
// It keeps the request's values but not its cancellation: the webhook server cancels
// every request's context as soon as its shutdown begins (controller-runtime derives
// them from the context the server runs in), and a review in flight must still be read,
// decided and answered then. The deadline bounds it, and a caller that goes away ends
// the body's reads.
func reviewContext(w http.ResponseWriter, r *http.Request) (context.Context, context.CancelFunc) {
	timeout := defaultReviewTimeout
	if v := r.URL.Query().Get("timeout"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			timeout = min(d, maxReviewTimeout)
		}
	}
	// Answer with a tenth of the time, at most a second, to spare for the way back.
	timeout -= min(timeout/10, time.Second)
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(context.WithoutCancel(r.Context()), deadline)
	// A body that trickles in must not outlast the review. Over HTTP/2 a read deadline
	// costs a timer and a message to the connection's goroutine per request; closing
	// the body when the review's time is up ends a blocked read too, on the context's
	// own timer. Over HTTP/1 the deadline is the connection's and cheap.
	if r.ProtoMajor >= 2 {
		stop := context.AfterFunc(ctx, func() { _ = r.Body.Close() })
		return ctx, func() { stop(); cancel() }
	}
	// Not every ResponseWriter supports it.
	_ = http.NewResponseController(w).SetReadDeadline(deadline)
	return ctx, cancel
}

// reviewGate bounds the reviews decided at once.
type reviewGate struct {
	slots chan struct{}
	wait  time.Duration
	// inFlight and refused are nil in handlers made without metrics.
	inFlight prometheus.Gauge
	refused  prometheus.Counter
}

// errBusy is a review that found no turn in time.
var errBusy = errors.New("too many admission reviews in flight")

func newReviewGate(s policy.ServerConfig, reg prometheus.Registerer, handler string) (*reviewGate, error) {
	n := s.MaxReviewsInFlight
	if n <= 0 {
		n = max(2, 2*runtime.GOMAXPROCS(0))
	}
	g := &reviewGate{slots: make(chan struct{}, n), wait: s.ReviewQueueTimeout.Duration}
	if g.wait <= 0 {
		g.wait = 2 * time.Second
	}
	if reg == nil {
		return g, nil
	}
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "sandbox_webhook_reviews_in_flight",
		Help:        "Admission reviews being decided (server.maxReviewsInFlight bounds them).",
		ConstLabels: prometheus.Labels{"handler": handler},
	})
	refused := prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "sandbox_webhook_reviews_refused_busy_total",
		Help:        "Admission reviews refused with 429 because none of server.maxReviewsInFlight turns came free within server.reviewQueueTimeout.",
		ConstLabels: prometheus.Labels{"handler": handler},
	})
	var err error
	if g.inFlight, err = collectors.Register(reg, inFlight); err != nil {
		return nil, err
	}
	if g.refused, err = collectors.Register(reg, refused); err != nil {
		return nil, err
	}
	return g, nil
}

// enter waits for a turn, at most the gate's wait and never past ctx; release ends it.
func (g *reviewGate) enter(ctx context.Context) (release func(), err error) {
	select {
	case g.slots <- struct{}{}:
	default:
		t := time.NewTimer(g.wait)
		defer t.Stop()
		select {
		case g.slots <- struct{}{}:
		case <-t.C:
			return nil, g.busy(errBusy)
		case <-ctx.Done():
			return nil, g.busy(fmt.Errorf("%w until the review's deadline", errBusy))
		}
	}
	if g.inFlight != nil {
		g.inFlight.Inc()
	}
	return g.leave, nil
}

func (g *reviewGate) leave() {
	if g.inFlight != nil {
		g.inFlight.Dec()
	}
	<-g.slots
}

func (g *reviewGate) busy(err error) error {
	if g.refused != nil {
		g.refused.Inc()
	}
	return err
}

// refuseBusy answers a review that found no turn: 429, which the API server counts as
// a failed call (the failure policy applies) and a client may retry.
func refuseBusy(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", strconv.Itoa(1))
	http.Error(w, "sandbox-webhook: "+err.Error(), http.StatusTooManyRequests)
}
