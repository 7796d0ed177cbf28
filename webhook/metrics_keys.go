package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// kindUninspected labels denials of objects over the detection bounds.
const kindUninspected = "uninspected (over bounds)"

// keyRejections counts denied private keys by kind of key and resource. Labels hold
// only those two fixed vocabularies, never values from the object.
var keyRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "sandbox_webhook_private_key_rejections_total",
	Help: "Private keys found in admitted objects and denied, by kind of key and resource.",
}, []string{"key_kind", "resource"})

func init() {
	metrics.Registry.MustRegister(keyRejections)
}
