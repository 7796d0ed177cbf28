package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/tenancy"
	"github.com/sandbox-webhook/sandbox-webhook/webhook"
)

func serveCommand(args []string, stderr io.Writer) error {
	fs := newServeFlags(stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster config, else $KUBECONFIG, else ~/.kube/config)")
	cfg, log, err := fs.parse(args)
	if err != nil {
		return err
	}
	setGoMemoryLimit(cfg.Server, os.Getenv("GOMEMLIMIT"), log)
	if cfg.Server.PprofBindAddress != "0" {
		// A heap profile of a process this small needs finer samples than one per 512 KiB.
		runtime.MemProfileRate = 4 << 10
	}
	restCfg, err := restConfig(*kubeconfig)
	if err != nil {
		return fmt.Errorf("finding the cluster: %w", err)
	}
	// The first SIGTERM or SIGINT starts the shutdown; a second one exits at once.
	return serve(ctrl.SetupSignalHandler(), restCfg, cfg, log)
}

// restConfig is the API server's address and credentials: from the kubeconfig file
// when one is named, else as every controller finds them.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}

// newServeFlags are serve's flags: those of every server command plus one per server
// setting, each overriding its config field when given.
func newServeFlags(stderr io.Writer) *serverFlags {
	fs := newServerFlags("serve", stderr, false)
	// Each flag overrides its config field when given; the config file stays the one
	// place for everything else.
	port := fs.Int("port", 0, "webhook HTTPS port (config server.port, default 9443)")
	certDir := fs.String("cert-dir", "", "folder with the serving certificate and key, reloaded when they change (config server.certDir)")
	certName := fs.String("cert-name", "", "certificate file name in --cert-dir (config server.certName, default tls.crt)")
	keyName := fs.String("key-name", "", "key file name in --cert-dir (config server.keyName, default tls.key)")
	metricsAddr := fs.String("metrics-bind-address", "", "Prometheus metrics address, 0 to disable (config server.metricsBindAddress, default :8080)")
	healthAddr := fs.String("health-probe-bind-address", "", "/healthz and /readyz address, 0 to disable (config server.healthProbeBindAddress, default :8081)")
	pprofAddr := fs.String("pprof-bind-address", "", "Go /debug/pprof address (heap and CPU profiles; plain HTTP, bind to loopback), 0 to disable (config server.pprofBindAddress, default 0)")
	leaderElect := fs.Bool("leader-elect", true, "run the tenancy reconciler under leader election (config server.leaderElection)")
	leaseNamespace := fs.String("leader-election-namespace", "", "namespace of the leader election Lease (config server.leaderElectionNamespace)")
	leaseName := fs.String("leader-election-id", "", "name of the leader election Lease (config server.leaderElectionID)")
	shutdownDelay := fs.Duration("shutdown-delay", 0, "after SIGTERM, keep serving this long with /readyz failing before closing the listener (config server.shutdownDelay, default 5s)")
	memoryLimit := &quantityFlag{}
	fs.Var(memoryLimit, "memory-limit", "the container's memory limit, in bytes or as a quantity (256Mi); the Go runtime gets --memory-limit-ratio of it unless GOMEMLIMIT is set (config server.memoryLimit)")
	memoryLimitRatio := fs.Float64("memory-limit-ratio", 0, "share of --memory-limit for the Go runtime, more than 0 and at most 1 (config server.memoryLimitRatio, default 0.9)")
	fs.override("port", func(c *policy.Config) { c.Server.Port = *port })
	fs.override("cert-dir", func(c *policy.Config) { c.Server.CertDir = *certDir })
	fs.override("cert-name", func(c *policy.Config) { c.Server.CertName = *certName })
	fs.override("key-name", func(c *policy.Config) { c.Server.KeyName = *keyName })
	fs.override("metrics-bind-address", func(c *policy.Config) { c.Server.MetricsBindAddress = *metricsAddr })
	fs.override("health-probe-bind-address", func(c *policy.Config) { c.Server.HealthProbeBindAddress = *healthAddr })
	fs.override("pprof-bind-address", func(c *policy.Config) { c.Server.PprofBindAddress = *pprofAddr })
	fs.override("leader-elect", func(c *policy.Config) { c.Server.LeaderElection = leaderElect })
	fs.override("leader-election-namespace", func(c *policy.Config) { c.Server.LeaderElectionNamespace = *leaseNamespace })
	fs.override("leader-election-id", func(c *policy.Config) { c.Server.LeaderElectionID = *leaseName })
	fs.override("shutdown-delay", func(c *policy.Config) { c.Server.ShutdownDelay = &metav1.Duration{Duration: *shutdownDelay} })
	fs.override("memory-limit", func(c *policy.Config) { c.Server.MemoryLimit = memoryLimit.q })
	fs.override("memory-limit-ratio", func(c *policy.Config) { c.Server.MemoryLimitRatio = *memoryLimitRatio })
	return fs
}

// quantityFlag is a flag whose value is a resource quantity: bytes, or 256Mi and the like.
type quantityFlag struct{ q *resource.Quantity }

func (f *quantityFlag) String() string {
	if f.q == nil {
		return ""
	}
	return f.q.String()
}

func (f *quantityFlag) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return errors.New("want bytes or a quantity such as 256Mi")
	}
	f.q = &q
	return nil
}

// goMemoryLimit is the Go runtime memory limit, in bytes, that serve sets:
// server.memoryLimitRatio of server.memoryLimit. It is 0 (set none) when gomemlimit, the
// GOMEMLIMIT environment variable, is set (the runtime has applied it already) or when
// there is no server.memoryLimit.
func goMemoryLimit(s policy.ServerConfig, gomemlimit string) int64 {
	if gomemlimit != "" || s.MemoryLimit == nil {
		return 0
	}
	limit := float64(s.MemoryLimit.Value()) * s.MemoryLimitRatio
	if limit >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(limit)
}

// setGoMemoryLimit applies goMemoryLimit and logs which limit is in force.
func setGoMemoryLimit(s policy.ServerConfig, gomemlimit string, log logr.Logger) {
	if limit := goMemoryLimit(s, gomemlimit); limit > 0 {
		debug.SetMemoryLimit(limit)
		log.Info("Go memory limit from server.memoryLimit", "memoryLimit", s.MemoryLimit.String(), "memoryLimitRatio", s.MemoryLimitRatio, "bytes", limit)
		return
	}
	if gomemlimit != "" {
		log.Info("Go memory limit from GOMEMLIMIT", "bytes", debug.SetMemoryLimit(-1))
		return
	}
	log.Info("no Go memory limit: neither server.memoryLimit nor GOMEMLIMIT is set")
}

// newManager builds the manager that serves the webhooks on every replica and runs the
// tenancy reconciler under leader election. certDir overrides cfg.Server.CertDir (dev).
func newManager(restCfg *rest.Config, cfg *policy.Config, log logr.Logger, host, certDir string) (manager.Manager, error) {
	return newManagerWith(restCfg, cfg, log, host, certDir, nil)
}

// newManagerWith is newManager whose /readyz also fails once draining is set.
func newManagerWith(restCfg *rest.Config, cfg *policy.Config, log logr.Logger, host, certDir string, draining *atomic.Bool) (manager.Manager, error) {
	byObject := map[client.Object]cache.ByObject{}
	maps.Copy(byObject, webhook.CacheByObject(cfg))
	if cfg.TenancyEnabled() {
		maps.Copy(byObject, tenancy.CacheByObject(cfg))
	}
	if certDir == "" {
		certDir = cfg.Server.CertDir
	}
	s := cfg.Server
	lease, renew, retry := s.LeaseDuration.Duration, s.RenewDeadline.Duration, s.RetryPeriod.Duration
	graceful := s.GracefulShutdownTimeout.Duration
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Logger: log,
		// No cached object keeps its managed fields: nothing here reads them, and they
		// are often larger than the rest of the object.
		Cache:                   cache.Options{ByObject: byObject, DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                 metricsserver.Options{BindAddress: s.MetricsBindAddress},
		HealthProbeBindAddress:  s.HealthProbeBindAddress,
		PprofBindAddress:        s.PprofBindAddress,
		LeaderElection:          cfg.TenancyEnabled() && cfg.LeaderElectionEnabled(),
		LeaderElectionID:        s.LeaderElectionID,
		LeaderElectionNamespace: s.LeaderElectionNamespace,
		LeaseDuration:           &lease,
		RenewDeadline:           &renew,
		RetryPeriod:             &retry,
		// Give up the lease on shutdown so another replica takes over at once.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &graceful,
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host:     host,
			Port:     s.Port,
			CertDir:  certDir,
			CertName: s.CertName,
			KeyName:  s.KeyName,
			// The certificate watcher reloads renewed files; TLS 1.2 is the floor.
			TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }},
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := webhook.Install(mgr, cfg); err != nil {
		return nil, err
	}
	if cfg.TenancyEnabled() {
		if err := tenancy.Setup(mgr, cfg); err != nil {
			return nil, fmt.Errorf("setting up tenancy reconciler: %w", err)
		}
	}
	if s.HealthProbeBindAddress != "0" {
		if err := addProbes(mgr, draining); err != nil {
			return nil, err
		}
	}
	return mgr, nil
}

// addProbes adds /healthz (the process answers) and /readyz: the webhook server answers
// TLS (so its certificate is loaded), the caches have synced, and no shutdown has begun.
func addProbes(mgr manager.Manager, draining *atomic.Bool) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	synced := &cacheSync{cache: mgr.GetCache()}
	if err := mgr.Add(synced); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("caches", synced.check); err != nil {
		return err
	}
	if draining != nil {
		return mgr.AddReadyzCheck("shutdown", func(*http.Request) error {
			if draining.Load() {
				return errors.New("shutting down")
			}
			return nil
		})
	}
	return nil
}

// cacheSync records when the manager's caches have synced. It runs on every replica.
type cacheSync struct {
	cache  cache.Cache
	synced atomic.Bool
}

func (c *cacheSync) Start(ctx context.Context) error {
	if c.cache.WaitForCacheSync(ctx) {
		c.synced.Store(true)
	}
	return nil
}

func (c *cacheSync) NeedLeaderElection() bool { return false }

func (c *cacheSync) check(*http.Request) error {
	if !c.synced.Load() {
		return errors.New("caches have not synced")
	}
	return nil
}

// serve runs the manager until ctx ends, then shuts down in order: /readyz fails at once
// so the Service stops routing here; after server.shutdownDelay the listener closes; the
// requests in flight finish (within server.gracefulShutdownTimeout); then it returns.
func serve(ctx context.Context, restCfg *rest.Config, cfg *policy.Config, log logr.Logger) error {
	draining := &atomic.Bool{}
	mgr, err := newManagerWith(restCfg, cfg, log, "", "", draining)
	if err != nil {
		return err
	}
	mgrCtx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
		case <-mgrCtx.Done():
			return
		}
		draining.Store(true)
		delay := cfg.Server.ShutdownDelay.Duration
		log.Info("shutting down: /readyz now fails; still serving until the shutdown delay ends", "shutdownDelay", delay)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-mgrCtx.Done():
		}
		log.Info("closing the listener; finishing the requests in flight", "gracefulShutdownTimeout", cfg.Server.GracefulShutdownTimeout.Duration)
		stop()
	}()
	certPath := filepath.Join(cfg.Server.CertDir, cfg.Server.CertName)
	fingerprint := "unreadable"
	if pem, err := os.ReadFile(certPath); err == nil {
		fingerprint = certs.Fingerprint(pem)
	}
	log.Info("starting", "port", cfg.Server.Port, "certificate", certPath, "certificateFingerprint", fingerprint,
		"tenancy", cfg.TenancyEnabled(), "leaderElection", cfg.LeaderElectionEnabled())
	if err := mgr.Start(mgrCtx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
