package tenancy

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

// storm creates tenants t-000 … t-<n-1> (namespace, then gateway ServiceAccount) from
// workers goroutines, each of which then deletes its own tenants numbered below deletes.
// halfway, if set, is closed once half the tenants exist. It returns when the last
// write was answered.
type storm struct {
	n, deletes, workers int
	halfway             chan struct{}
}

func stormTenant(i int) string { return fmt.Sprintf("t-%04d", i) }

func (s *suite) run(st storm) (lastWrite time.Time, err error) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		created atomic.Int64
		once    sync.Once
	)
	note := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
		lastWrite = time.Now()
	}
	for w := range st.workers {
		wg.Go(func() {
			for i := w; i < st.n; i += st.workers {
				ns := envtestutil.NamespaceObject(s.nsName(stormTenant(i)), map[string]string{testTenantLabel: s.label})
				note(cp.Client.Create(s.ctx, ns))
				a := &corev1.ServiceAccount{}
				a.Namespace, a.Name = ns.Name, s.cfg.Tenancy.ServiceAccountName
				note(cp.Client.Create(s.ctx, a))
				if int(created.Add(1)) >= st.n/2 && st.halfway != nil {
					once.Do(func() { close(st.halfway) })
				}
			}
			for i := w; i < st.deletes; i += st.workers {
				note(cp.Client.Delete(s.ctx, envtestutil.NamespaceObject(s.nsName(stormTenant(i)), nil)))
			}
		})
	}
	wg.Wait()
	return lastWrite, errors.Join(errs...)
}

// survivors are the subjects the binding must hold after st.
func (s *suite) survivors(st storm, foreign []rbacv1.Subject) []rbacv1.Subject {
	want := slices.Clone(foreign)
	for i := st.deletes; i < st.n; i++ {
		want = append(want, s.gateway(stormTenant(i)))
	}
	return want
}

func TestStormWithTwoReplicasEndsWithExactlyTheLiveTenants(t *testing.T) {
	s := newSuite(t, "storm", nil)
	replicas := []*runningManager{s.startManager(true), s.startManager(true)}
	s.waitForSubjects("an empty binding is created")
	foreign := foreignSubjects(s)
	s.editBinding(func(b *rbacv1.ClusterRoleBinding) { b.Subjects = append(b.Subjects, foreign...) })
	s.waitForSubjects("hand-added subjects are kept", foreign...)

	st := storm{n: 200, deletes: 50, workers: 8}
	want := s.survivors(st, foreign)
	bw := watchBinding(t, s.cfg.Tenancy.BindingName, func(b *rbacv1.ClusterRoleBinding) bool {
		return slices.Equal(b.Subjects, sorted(want))
	})
	writesBefore := bindingWrites(t)
	if _, err := s.run(st); err != nil {
		t.Fatal(err)
	}
	s.waitForSubjects("after the storm: exactly the live tenants and the hand-added subjects", want...)

	writes := bindingWrites(t) - writesBefore
	events := 2*st.n + st.deletes
	leaders := 0
	for _, r := range replicas {
		if r.elected() {
			leaders++
		}
	}
	eventually(t, "the watch sees the complete binding", func() (bool, string) {
		n, reached, _ := bw.snapshot()
		return !reached.IsZero(), fmt.Sprint(n, " writes seen")
	})
	seen, _, _ := bw.snapshot()
	t.Logf("storm of %d namespaces created and %d deleted (%d object events) by %d goroutines, 2 replicas (%d leading): %.0f binding writes by the reconciler, %d seen by a watch",
		st.n, st.deletes, events, st.workers, leaders, writes, seen)
	if leaders != 1 {
		t.Errorf("%d replicas lead, want exactly 1", leaders)
	}
	if writes >= float64(st.n) {
		t.Errorf("%.0f binding writes for %d namespace creations: events were not coalesced", writes, st.n)
	}
}

func TestFailoverMidStormTheOtherReplicaFinishes(t *testing.T) {
	s := newSuite(t, "failover", nil)
	// A stop without releasing the lease looks like a crash: the other replica waits for
	// the lease to expire.
	replicas := []*runningManager{s.startManager(false), s.startManager(false)}
	var leader, follower *runningManager
	eventually(t, "one replica leads", func() (bool, string) {
		for i, r := range replicas {
			if r.elected() {
				leader, follower = r, replicas[1-i]
				return true, ""
			}
		}
		return false, "no leader yet"
	})
	s.waitForSubjects("an empty binding is created")
	foreign := foreignSubjects(s)
	s.editBinding(func(b *rbacv1.ClusterRoleBinding) { b.Subjects = append(b.Subjects, foreign...) })

	st := storm{n: 160, deletes: 40, workers: 8, halfway: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := s.run(st)
		done <- err
	}()
	select {
	case <-st.halfway:
	case err := <-done:
		t.Fatalf("storm ended before it was halfway: %v", err)
	}
	leader.stop(t)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	eventually(t, "the other replica takes the lease", func() (bool, string) {
		return follower.elected(), "follower not elected"
	})
	s.waitForSubjects("the new leader finishes the job", s.survivors(st, foreign)...)
}

func sorted(s []rbacv1.Subject) []rbacv1.Subject {
	s = slices.Clone(s)
	SortSubjects(s)
	return s
}
