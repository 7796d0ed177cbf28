package tenancy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
	var err error
	m.ManagedSubjects = register(reg, m.ManagedSubjects, &err)
	m.Tenants = register(reg, m.Tenants, &err)
	m.RoleRefMismatch = register(reg, m.RoleRefMismatch, &err)
	m.Writes = register(reg, m.Writes, &err)
	m.Conflicts = register(reg, m.Conflicts, &err)
	return m, err
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		*errp = errors.Join(*errp, err)
	}
	return c
}
