package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/examples"
	"github.com/sandbox-webhook/sandbox-webhook/manifests"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

const (
	// devKubeVersion is the API server version `make envtest` builds.
	devKubeVersion = "1.37.2"
	// devHost is where the webhook listens and the API server calls it.
	devHost = "127.0.0.1"
	// devCertValidity bounds the serving certificate made for one dev session.
	devCertValidity = 30 * 24 * time.Hour
	// devWait bounds each wait for something dev started; only a hang reaches it.
	devWait = 2 * time.Minute
)

func devCommand(args []string, stdout, stderr io.Writer) error {
	out := &syncWriter{w: stdout}
	fs := newServerFlags("dev", stderr, true)
	assets := fs.String("assets", "", "folder with kube-apiserver and etcd (default: $KUBEBUILDER_ASSETS, else bin/k8s/"+devKubeVersion+")")
	kubeconfigOut := fs.String("kubeconfig-out", "bin/dev/kubeconfig", "where to write a kubeconfig for the dev API server")
	tenant := fs.String("tenant", "tenant-dev", "tenant namespace to create, with its gateway ServiceAccount (empty: none)")
	metricsAddr := fs.String("metrics-bind-address", "0", "metrics address in dev mode (0: off)")
	demo := fs.Bool("demo", false, "apply the examples (two tenants, a sandbox pod in each), print what the webhook injected, try a pod with a private key and show the tenancy binding, then stop")
	keepRunning := fs.Bool("keep-running", false, "with --demo: keep serving after the demo until Ctrl-C")
	devDefaultLogLevel(fs.FlagSet)
	// One process on a laptop: no probes, no replicas to elect a leader among. Applied
	// with the flags, so --print-config shows them.
	fs.overrides = append(fs.overrides, func(c *policy.Config) {
		c.Server.MetricsBindAddress = *metricsAddr
		c.Server.HealthProbeBindAddress = "0"
		noElection := false
		c.Server.LeaderElection = &noElection
	})
	cfg, log, err := fs.parse(args)
	if err != nil {
		return err
	}
	if *keepRunning && !*demo {
		return &exitError{code: 2, err: errors.New("dev: --keep-running goes with --demo (without --demo, dev keeps running anyway)")}
	}
	if *assets == "" {
		*assets = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if *assets == "" {
		*assets = filepath.Join("bin", "k8s", devKubeVersion)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(*assets, bin)); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("dev: %s not found in %s: run `make envtest` (or `make run`), which builds it from source", bin, *assets)}
		}
	}
	ctx, stop := devSignalContext(out)
	defer stop()
	return runDev(ctx, cfg, log, devOptions{
		assets: *assets, kubeconfigOut: *kubeconfigOut, tenant: *tenant,
		demo: *demo, keepRunning: *keepRunning,
	}, out, stderr)
}

// devDefaultLogLevel makes errors the default log level of dev: its own lines say what
// happens, and --log-level info shows the manager's lifecycle too.
func devDefaultLogLevel(fs *flag.FlagSet) {
	if f := fs.Lookup("log-level"); f != nil && f.Value.Set("error") == nil {
		f.DefValue = "error"
	}
}

// devSignalContext is cancelled by the first SIGINT or SIGTERM. Later signals only say
// that shutdown is under way: dev never exits before it has stopped the processes it
// started. stop ends the signal handling.
func devSignalContext(out io.Writer) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			case s := <-signals:
				if n == 0 {
					fmt.Fprintf(out, "dev: %s: stopping\n", s)
					cancel()
				} else {
					fmt.Fprintln(out, "dev: already stopping; waiting for kube-apiserver and etcd to exit")
				}
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(signals)
			close(done)
			cancel()
		})
	}
}

type devOptions struct {
	assets, kubeconfigOut, tenant string
	demo, keepRunning             bool
}

func runDev(ctx context.Context, cfg *policy.Config, log logr.Logger, opts devOptions, out, stderr io.Writer) (err error) {
	// A request cut short by Ctrl-C is a stop, not a failure.
	defer func() {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = nil
		}
	}()
	crds, err := manifests.CRDs()
	if err != nil {
		return err
	}
	gatewayRole, err := manifests.GatewayClusterRole()
	if err != nil {
		return err
	}
	mutating, validating, err := manifests.WebhookConfigurations()
	if err != nil {
		return err
	}
	var demo *demoObjects
	if opts.demo {
		if demo, err = loadDemoObjects(cfg); err != nil {
			return err
		}
	}

	// Before anything that could outlive dev: the watchdog, which stops kube-apiserver
	// and etcd and removes the session folder should dev die without doing so itself.
	watchdog, err := startDevWatchdog(stderr)
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := watchdog.stop(); stopErr != nil && err == nil {
			err = stopErr
		}
	}()

	// One folder for the session: the serving certificate, etcd's data and the API
	// server's certificates.
	sessionDir, err := os.MkdirTemp("", devSessionPrefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(sessionDir)
	if err := watchdog.removeOnExit(sessionDir); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	certDir := filepath.Join(sessionDir, "webhook")
	etcdDir := filepath.Join(sessionDir, "etcd")
	apiServerDir := filepath.Join(sessionDir, "kube-apiserver")
	for _, dir := range []string{certDir, etcdDir, apiServerDir} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
	}

	// A CA and serving certificate for this session only.
	bundle, err := certs.SelfSigned([]string{devHost, "localhost"}, devCertValidity)
	if err != nil {
		return fmt.Errorf("dev: serving certificate: %w", err)
	}
	if err := bundle.WriteServing(certDir, cfg.Server.CertName, cfg.Server.KeyName); err != nil {
		return fmt.Errorf("dev: writing the serving certificate: %w", err)
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	cfg.Server.Port = port

	fmt.Fprintf(out, "dev: starting kube-apiserver and etcd from %s\n", shortPath(opts.assets))
	useExisting := false
	env := &envtest.Environment{
		BinaryAssetsDirectory:    opts.assets,
		UseExistingCluster:       &useExisting,
		CRDInstallOptions:        envtest.CRDInstallOptions{CRDs: crds},
		ControlPlaneStartTimeout: devWait,
		ControlPlaneStopTimeout:  30 * time.Second,
		ControlPlane: envtest.ControlPlane{
			Etcd:      &envtest.Etcd{DataDir: etcdDir},
			APIServer: &envtest.APIServer{CertDir: apiServerDir},
		},
	}
	// Stop whatever started, even when Start failed half-way.
	defer func() {
		fmt.Fprintln(out, "dev: stopping kube-apiserver and etcd")
		_ = env.WebhookInstallOptions.Cleanup()
		if stopErr := env.ControlPlane.Stop(); stopErr != nil {
			fmt.Fprintf(out, "dev: stopping kube-apiserver and etcd: %v\n", stopErr)
			if err == nil {
				err = stopErr
			}
			return
		}
		fmt.Fprintln(out, "dev: stopped")
	}()
	started := time.Now()
	stopWatching := watchdog.watchChildren(out)
	restCfg, err := env.Start()
	stopWatching()
	if err != nil {
		return fmt.Errorf("dev: starting kube-apiserver and etcd: %w", err)
	}
	if ctx.Err() != nil {
		return nil
	}
	fmt.Fprintf(out, "dev: API server %s (up in %s)\n", strings.TrimSuffix(restCfg.Host, "/"), time.Since(started).Round(100*time.Millisecond))

	c, err := client.New(restCfg, client.Options{})
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, c, cfg.Server.Namespace, nil); err != nil {
		return err
	}
	if err := c.Create(ctx, gatewayRole); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("dev: creating ClusterRole %s: %w", gatewayRole.Name, err)
	}
	if opts.tenant != "" {
		if err := ensureNamespace(ctx, c, opts.tenant, map[string]string{"sandbox-webhook.io/tenant": "true"}); err != nil {
			return err
		}
		sa := &corev1.ServiceAccount{}
		sa.Namespace, sa.Name = opts.tenant, cfg.Tenancy.ServiceAccountName
		if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("dev: creating the gateway ServiceAccount: %w", err)
		}
	}

	// The same manager as serve, listening on loopback with this session's certificate.
	mgr, err := newManager(restCfg, cfg, log, devHost, certDir)
	if err != nil {
		return err
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	mgrStopped := make(chan struct{})
	var mgrErr error
	go func() {
		defer close(mgrStopped)
		mgrErr = mgr.Start(mgrCtx)
	}()
	defer func() {
		fmt.Fprintln(out, "dev: stopping the webhook")
		stopMgr()
		<-mgrStopped
		if mgrErr != nil && !errors.Is(mgrErr, context.Canceled) && err == nil {
			err = fmt.Errorf("dev: webhook: %w", mgrErr)
		}
	}()

	// Install the configurations only once the webhook answers, so that the API server
	// never refuses a request because the webhook is still starting.
	webhookURL := "https://" + net.JoinHostPort(devHost, strconv.Itoa(port))
	if err := waitForTLS(ctx, mgrStopped, net.JoinHostPort(devHost, strconv.Itoa(port)), bundle.CAPEM); err != nil {
		select {
		case <-mgrStopped:
			return fmt.Errorf("dev: webhook: %w", mgrErr)
		default:
			return err
		}
	}
	fmt.Fprintf(out, "dev: webhook %s (certificate %s, from a CA made for this session)\n", webhookURL, certs.Fingerprint(bundle.CertPEM))
	configs, err := devWebhookConfigurations(mutating, validating, webhookURL, bundle.CAPEM)
	if err != nil {
		return err
	}
	for _, obj := range configs {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("dev: installing %s: %w", describeWebhookConfiguration(obj), err)
		}
		fmt.Fprintf(out, "dev: installed %s\n", describeWebhookConfiguration(obj))
	}
	if err := waitForAdmission(ctx, c, cfg, opts.tenant); err != nil {
		return err
	}
	if opts.tenant != "" {
		// Ready means the tenancy reconciler runs too: it has bound the tenant's gateway.
		if cfg.TenancyEnabled() {
			gateway := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: opts.tenant, Name: cfg.Tenancy.ServiceAccountName}
			if _, err := waitForBindingSubjects(ctx, c, cfg.Tenancy.BindingName, []rbacv1.Subject{gateway}, admissionWait); err != nil {
				return fmt.Errorf("dev: %w", err)
			}
		}
		fmt.Fprintf(out, "dev: tenant namespace %s (label sandbox-webhook.io/tenant=true) with ServiceAccount %s\n", opts.tenant, cfg.Tenancy.ServiceAccountName)
	}

	user, err := env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("dev: creating the dev user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(opts.kubeconfigOut, kubeconfig); err != nil {
		return fmt.Errorf("dev: writing kubeconfig: %w", err)
	}
	fmt.Fprintf(out, "dev: ready; kubeconfig %s\n", opts.kubeconfigOut)

	if opts.demo {
		if err := runDemo(ctx, c, cfg, demo, out); err != nil {
			if ctx.Err() != nil {
				return &exitError{code: 1, err: errors.New("dev: the demo was interrupted")}
			}
			return err
		}
		if !opts.keepRunning {
			return nil
		}
	}
	printDevHints(out, opts)

	select {
	case <-ctx.Done():
		return nil
	case <-mgrStopped:
		if mgrErr == nil {
			mgrErr = errors.New("stopped unexpectedly")
		}
		return fmt.Errorf("dev: webhook: %w", mgrErr)
	}
}

// printDevHints says how to use the running cluster.
func printDevHints(out io.Writer, opts devOptions) {
	k := "kubectl --kubeconfig " + opts.kubeconfigOut
	if opts.demo {
		fmt.Fprintln(out, "dev: the demo's objects are in place; look at them:")
		fmt.Fprintf(out, "dev:   %s get pods -A\n", k)
		fmt.Fprintf(out, "dev:   %s get pod -n tenant-a sandbox-a -o yaml\n", k)
		fmt.Fprintf(out, "dev: examples/%s says how to try the key check yourself\n", examples.PodWithKey)
	} else {
		fmt.Fprintln(out, "dev: try:")
		fmt.Fprintf(out, "dev:   %s apply -f examples/%s\n", k, examples.Tenants)
		fmt.Fprintf(out, "dev:   %s apply -f examples/%s\n", k, examples.SandboxPods)
		fmt.Fprintf(out, "dev:   %s get pods -A\n", k)
		fmt.Fprintf(out, "dev:   %s get pod -n tenant-a sandbox-a -o yaml\n", k)
	}
	fmt.Fprintln(out, "dev: press Ctrl-C to stop")
}

func ensureNamespace(ctx context.Context, c client.Client, name string, labels map[string]string) error {
	ns := &corev1.Namespace{}
	ns.Name, ns.Labels = name, labels
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("dev: creating namespace %s: %w", name, err)
	}
	return nil
}

// shortPath is path relative to the working directory when it lies below it.
func shortPath(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || !filepath.IsAbs(path) || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}

// freeLoopbackPort is a TCP port on the loopback address that was free a moment ago.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(devHost, "0"))
	if err != nil {
		return 0, fmt.Errorf("dev: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitForTLS returns once addr completes a TLS handshake with a certificate of caPEM,
// or fails when stopped closes (the server gave up) or ctx ends.
func waitForTLS(ctx context.Context, stopped <-chan struct{}, addr string, caPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("dev: the session CA does not parse")
	}
	host, _, _ := net.SplitHostPort(addr)
	deadline := time.NewTimer(devWait)
	defer deadline.Stop()
	var last error
	for {
		d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}}
		dialCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := d.DialContext(dialCtx, "tcp", addr)
		cancel()
		if err == nil {
			_ = conn.Close()
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stopped:
			return errors.New("dev: the webhook stopped before it served")
		case <-deadline.C:
			return fmt.Errorf("dev: the webhook does not answer on %s: %v", addr, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeFileAtomic writes data to path (mode 0600) through a rename, so that nobody
// reads half a file.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// syncWriter serializes writes from dev's goroutines (the signal handler among them).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
