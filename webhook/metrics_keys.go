package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandbox-webhook/sandbox-webhook/internal/collectors"
)

// kindUninspected labels denials of objects over the detection bounds.
const kindUninspected = "uninspected (over bounds)"

// newKeyRejections registers the counter of denied private keys by kind of key and
// resource. Labels hold only those two fixed vocabularies, never values from the object.
func newKeyRejections(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	return collectors.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sandbox_webhook_private_key_rejections_total",
		Help: "Private keys found in admitted objects and denied, by kind of key and resource.",
	}, []string{"key_kind", "resource"}))
}
