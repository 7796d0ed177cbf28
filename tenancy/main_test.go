package tenancy

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

// The package's one control plane. Each test isolates itself with its own tenant label
// value, binding name and lease name, so leftovers of one test are invisible to the next.
var cp *envtestutil.ControlPlane

func TestMain(m *testing.M) {
	ctrl.SetLogger(errorsOnly(os.Stderr))
	envtestutil.Main(m, envtestutil.Options{}, &cp)
}

// errorsOnly logs errors and nothing else, so that suites stay readable.
func errorsOnly(w *os.File) logr.Logger {
	return funcr.New(func(prefix, args string) {
		if strings.Contains(args, `"error"`) {
			fmt.Fprintln(w, prefix, args)
		}
	}, funcr.Options{})
}

// suite is one test's slice of the control plane.
type suite struct {
	t     testing.TB
	ctx   context.Context
	cfg   *policy.Config
	label string // tenant label value; namespaces are named <label>-<name>
}

const testTenantLabel = "tenancy-test"

func newSuite(t testing.TB, label string, edit func(*policy.Config)) *suite {
	cfg := policy.DefaultConfig()
	cfg.Tenants.NamespaceSelector = testTenantLabel + "=" + label
	cfg.Tenancy.BindingName = label + "-node-reader"
	cfg.Tenancy.ClusterRoleName = label + "-node-reader"
	cfg.Tenancy.BatchDelay.Duration = 100 * time.Millisecond
	cfg.Server.LeaderElectionID = label + "-tenancy"
	cfg.Server.LeaderElectionNamespace = "default"
	// Short enough for a quick failover, long enough for two busy cores to renew in time.
	cfg.Server.LeaseDuration.Duration = 6 * time.Second
	cfg.Server.RenewDeadline.Duration = 4 * time.Second
	cfg.Server.RetryPeriod.Duration = 500 * time.Millisecond
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return &suite{t: t, ctx: context.Background(), cfg: cfg, label: label}
}

// runningManager is one replica of the reconciler.
type runningManager struct {
	mgr    manager.Manager
	cancel context.CancelFunc
	done   chan struct{}
}

// elected reports whether the replica holds the lease.
func (m *runningManager) elected() bool {
	select {
	case <-m.mgr.Elected():
		return true
	default:
		return false
	}
}

// stop cancels the replica and waits for it to return.
func (m *runningManager) stop(t testing.TB) {
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(60 * time.Second):
		t.Fatal("manager did not stop")
	}
}

// startManager starts one replica the way serve does: leader election on, the package's
// cache limits and Setup. releaseOnCancel=false makes a stop look like a crash: the lease
// is left to expire.
func (s *suite) startManager(releaseOnCancel bool) *runningManager {
	t := s.t
	sv := s.cfg.Server
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{
		Scheme:                        cp.Scheme,
		Cache:                         cache.Options{ByObject: CacheByObject(s.cfg)},
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              sv.LeaderElectionID,
		LeaderElectionNamespace:       sv.LeaderElectionNamespace,
		LeaseDuration:                 &sv.LeaseDuration.Duration,
		RenewDeadline:                 &sv.RenewDeadline.Duration,
		RetryPeriod:                   &sv.RetryPeriod.Duration,
		LeaderElectionReleaseOnCancel: releaseOnCancel,
		// Several replicas of the same controller live in this one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Setup(mgr, s.cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &runningManager{mgr: mgr, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager stopped: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-m.done
	})
	return m
}

func (s *suite) nsName(name string) string { return s.label + "-" + name }

// createTenant creates tenant namespace <label>-<name>, with the gateway ServiceAccount
// when withAccount is set.
func (s *suite) createTenant(name string, withAccount bool) {
	s.t.Helper()
	ns := envtestutil.NamespaceObject(s.nsName(name), map[string]string{testTenantLabel: s.label})
	if err := cp.Client.Create(s.ctx, ns); err != nil {
		s.t.Fatalf("creating namespace %s: %v", ns.Name, err)
	}
	if withAccount {
		s.createAccount(name)
	}
}

func (s *suite) createAccount(name string) {
	s.t.Helper()
	a := &corev1.ServiceAccount{}
	a.Namespace, a.Name = s.nsName(name), s.cfg.Tenancy.ServiceAccountName
	if err := cp.Client.Create(s.ctx, a); err != nil {
		s.t.Fatalf("creating service account %s/%s: %v", a.Namespace, a.Name, err)
	}
}

// deleteTenant deletes the namespace; without a namespace controller it stays Terminating.
func (s *suite) deleteTenant(name string) {
	s.t.Helper()
	if err := cp.Client.Delete(s.ctx, envtestutil.NamespaceObject(s.nsName(name), nil)); err != nil {
		s.t.Fatalf("deleting namespace %s: %v", s.nsName(name), err)
	}
}

// gateway is the subject tenant <label>-<name> must have.
func (s *suite) gateway(name string) rbacv1.Subject {
	return serviceAccountSubject(s.nsName(name), s.cfg.Tenancy.ServiceAccountName)
}

func (s *suite) binding() (*rbacv1.ClusterRoleBinding, error) {
	b := &rbacv1.ClusterRoleBinding{}
	err := cp.Client.Get(s.ctx, client.ObjectKey{Name: s.cfg.Tenancy.BindingName}, b)
	return b, err
}

// editBinding changes the binding by hand, as a person would, retrying on conflict.
func (s *suite) editBinding(edit func(*rbacv1.ClusterRoleBinding)) {
	s.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		b, err := s.binding()
		if err != nil {
			return err
		}
		edit(b)
		return cp.Client.Update(s.ctx, b)
	})
	if err != nil {
		s.t.Fatalf("editing binding by hand: %v", err)
	}
}

// waitForSubjects waits until the binding holds exactly want, in sorted order, and points
// at the configured role.
func (s *suite) waitForSubjects(what string, want ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	s.t.Helper()
	want = slices.Clone(want)
	SortSubjects(want)
	var got *rbacv1.ClusterRoleBinding
	eventually(s.t, what, func() (bool, string) {
		b, err := s.binding()
		if err != nil {
			return false, err.Error()
		}
		got = b
		if b.RoleRef.Name != s.cfg.Tenancy.ClusterRoleName || b.RoleRef.Kind != "ClusterRole" {
			return false, fmt.Sprintf("roleRef %+v", b.RoleRef)
		}
		if !slices.Equal(b.Subjects, want) {
			return false, fmt.Sprintf("%d subjects %v, want %d", len(b.Subjects), abbreviate(b.Subjects), len(want))
		}
		return true, ""
	})
	return got
}

func abbreviate(s []rbacv1.Subject) []rbacv1.Subject {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// eventually polls cond until it holds, failing after a generous bound; it never
// measures how long the wait took.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened; last seen: %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metricSum sums a counter or gauge of the controller-runtime registry over the series
// whose labels include match.
func metricSum(t testing.TB, name string, match map[string]string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func reconciles(t testing.TB) float64 {
	return metricSum(t, "controller_runtime_reconcile_total", map[string]string{"controller": ControllerName})
}

func bindingWrites(t testing.TB) float64 {
	return metricSum(t, "sandbox_webhook_tenancy_binding_writes_total", nil)
}

// bindingWatch counts every write to one binding as the API server reports it, and
// notes when the binding first reached a state.
type bindingWatch struct {
	mu         sync.Mutex
	writes     int
	reached    time.Time
	reachedAt  int // writes when reached
	stop       func()
	isComplete func(*rbacv1.ClusterRoleBinding) bool
}

// watchBinding starts watching after the binding's current version, so that only later
// writes count.
func watchBinding(t testing.TB, name string, isComplete func(*rbacv1.ClusterRoleBinding) bool) *bindingWatch {
	t.Helper()
	current := &rbacv1.ClusterRoleBinding{}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Name: name}, current); ignoreNotFound(err) != nil {
		t.Fatal(err)
	}
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: cp.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := wc.Watch(ctx, &rbacv1.ClusterRoleBindingList{}, &client.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", name),
		Raw:           &metav1.ListOptions{ResourceVersion: current.ResourceVersion},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	bw := &bindingWatch{isComplete: isComplete}
	done := make(chan struct{})
	bw.stop = func() {
		cancel()
		w.Stop()
		<-done
	}
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			b, ok := ev.Object.(*rbacv1.ClusterRoleBinding)
			if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified && ev.Type != watch.Deleted) {
				continue
			}
			now := time.Now()
			bw.mu.Lock()
			bw.writes++
			if bw.reached.IsZero() && ev.Type != watch.Deleted && isComplete(b) {
				bw.reached, bw.reachedAt = now, bw.writes
			}
			bw.mu.Unlock()
		}
	}()
	t.Cleanup(bw.stop)
	return bw
}

func (bw *bindingWatch) snapshot() (writes int, reached time.Time, reachedAt int) {
	bw.mu.Lock()
	defer bw.mu.Unlock()
	return bw.writes, bw.reached, bw.reachedAt
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
