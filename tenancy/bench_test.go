package tenancy

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
)

// benchRuns keeps every benchmark run's tenants apart: deleted namespaces never go away
// in this control plane.
var benchRuns atomic.Int64

// BenchmarkConvergenceAfter1000Namespaces creates 1,000 tenants (namespace and gateway
// ServiceAccount each) from 8 goroutines under one leading replica, and reports how long
// after the last creation the binding held all 1,000 subjects and how many binding
// writes it took.
func BenchmarkConvergenceAfter1000Namespaces(b *testing.B) {
	const tenants = 1000
	var converge time.Duration
	var writes, seen float64
	for b.Loop() {
		s := newSuite(b, fmt.Sprintf("bench%d", benchRuns.Add(1)), nil)
		s.startManager(true)
		s.waitForSubjects("an empty binding is created")
		bw := watchBinding(b, s.cfg.Tenancy.BindingName, func(crb *rbacv1.ClusterRoleBinding) bool {
			return len(crb.Subjects) == tenants
		})
		before := bindingWrites(b)

		last, err := s.run(storm{n: tenants, workers: 8})
		if err != nil {
			b.Fatal(err)
		}
		eventually(b, "a complete binding", func() (bool, string) {
			n, reached, _ := bw.snapshot()
			return !reached.IsZero(), fmt.Sprint(n, " writes seen")
		})
		_, reached, writesToComplete := bw.snapshot()
		converge += reached.Sub(last)
		writes += bindingWrites(b) - before
		seen += float64(writesToComplete)
	}
	n := float64(b.N)
	b.ReportMetric(converge.Seconds()/n, "s-to-converge")
	b.ReportMetric(writes/n, "binding-writes")
	b.ReportMetric(seen/n, "writes-to-complete")
	b.ReportMetric(2*tenants, "object-events")
}
