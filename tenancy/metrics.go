package tenancy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandbox-webhook/sandbox-webhook/internal/collectors"
)

// Metrics are the reconciler's Prometheus series. Every manager in a process shares them:
// only the leader reconciles, so the gauges have one writer at a time.
type Metrics struct {
	ManagedSubjects prometheus.Gauge
	Tenants         prometheus.Gauge
	RoleRefMismatch prometheus.Gauge
	Writes          *prometheus.CounterVec
	Conflicts       prometheus.Counter
}

// NewMetrics registers the reconciler's series with reg, or returns the ones already
// registered there.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		ManagedSubjects: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sandbox_webhook_tenancy_managed_subjects",
			Help: "Subjects of the tenancy ClusterRoleBinding that the reconciler added and manages.",
		}),
		Tenants: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sandbox_webhook_tenancy_tenants",
			Help: "Tenant namespaces that exist and are not terminating, as last seen by the reconciler.",
		}),
		RoleRefMismatch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sandbox_webhook_tenancy_roleref_mismatch",
			Help: "1 while the tenancy ClusterRoleBinding refers to another role than the configured one and is left alone.",
		}),
		Writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandbox_webhook_tenancy_binding_writes_total",
			Help: "Writes to the tenancy ClusterRoleBinding, by operation (create, update, delete).",
		}, []string{"operation"}),
		Conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandbox_webhook_tenancy_binding_conflicts_total",
			Help: "Writes to the tenancy ClusterRoleBinding refused because it had changed since it was read; each is retried.",
		}),
	}
	var errs [5]error
	m.ManagedSubjects, errs[0] = collectors.Register(reg, m.ManagedSubjects)
	m.Tenants, errs[1] = collectors.Register(reg, m.Tenants)
	m.RoleRefMismatch, errs[2] = collectors.Register(reg, m.RoleRefMismatch)
	m.Writes, errs[3] = collectors.Register(reg, m.Writes)
	m.Conflicts, errs[4] = collectors.Register(reg, m.Conflicts)
	return m, errors.Join(errs[:]...)
}
