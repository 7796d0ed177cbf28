// Package envtestutil starts one real kube-apiserver and etcd for a package's tests,
// from the binaries that `make envtest` builds from source, and stops them afterwards.
// With webhook manifests it also points the API server at a local webhook server over
// TLS, so suites exercise admission exactly as a cluster would.
package envtestutil

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// KubeVersion is the kube-apiserver version `make envtest` builds; keep it equal to
// KUBE_VERSION in the Makefile.
const KubeVersion = "1.37.2"

// Options says what a package's control plane needs.
type Options struct {
	// CRDDirs are folders or files of CRDs to install, relative to the repository root
	// unless absolute. Default: manifests/crds.
	CRDDirs []string
	// WebhookManifests are files or folders with Mutating/ValidatingWebhookConfigurations,
	// relative to the repository root unless absolute. When set, the configurations are
	// installed pointing at a local server whose address and certificates are in
	// ControlPlane.Webhook.
	WebhookManifests []string
	// APIServerArgs are extra kube-apiserver flags, "name=value".
	APIServerArgs map[string]string
}

// WebhookServing is where the test's webhook server must listen for the API server to
// reach it.
type WebhookServing struct {
	Host    string
	Port    int
	CertDir string
}

// ControlPlane is a running kube-apiserver and etcd.
type ControlPlane struct {
	Config  *rest.Config
	Client  client.Client
	Scheme  *runtime.Scheme
	Webhook WebhookServing
	env     *envtest.Environment
}

// RepoRoot is the folder holding the module's go.mod.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && len(b) > 0 && isMainModule(b) {
			return d
		}
		if filepath.Dir(d) == d {
			panic("envtestutil: no go.mod of github.com/sandbox-webhook/sandbox-webhook above " + dir)
		}
	}
}

func isMainModule(gomod []byte) bool {
	const want = "module github.com/sandbox-webhook/sandbox-webhook\n"
	return len(gomod) >= len(want) && string(gomod[:len(want)]) == want
}

// AssetsDir is the folder of kube-apiserver and etcd: KUBEBUILDER_ASSETS when set (the
// Makefile sets it), else bin/k8s/<KubeVersion> under the repository root.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "bin", "k8s", KubeVersion)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("envtest binaries missing in %s (%v): run `make envtest`, which builds them from source", dir, err)
		}
	}
	return dir, nil
}

func resolve(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(RepoRoot(), p)
		}
		out = append(out, p)
	}
	return out
}

// Start starts a control plane with opts.
func Start(opts Options) (*ControlPlane, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	if opts.CRDDirs == nil {
		opts.CRDDirs = []string{"manifests/crds"}
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        resolve(opts.CRDDirs),
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if len(opts.WebhookManifests) > 0 {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: resolve(opts.WebhookManifests)}
	}
	api := env.ControlPlane.GetAPIServer()
	for k, v := range opts.APIServerArgs {
		api.Configure().Set(k, v)
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest control plane from %s: %w", assets, err)
	}
	// Suites create many objects quickly; the default client limits would slow them.
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	w := env.WebhookInstallOptions
	return &ControlPlane{
		Config: cfg, Client: c, Scheme: scheme, env: env,
		Webhook: WebhookServing{Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir},
	}, nil
}

// KubeConfig is a kubeconfig for an administrator of this control plane, for processes
// the tests start.
func (c *ControlPlane) KubeConfig() ([]byte, error) {
	user, err := c.env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	return user.KubeConfig()
}

// Stop stops the API server and etcd and removes their data.
func (c *ControlPlane) Stop() error {
	if c == nil || c.env == nil {
		return nil
	}
	return c.env.Stop()
}

// Runner is what Main runs once the control plane is up: a *testing.M, or a wrapper that
// starts the package's servers first.
type Runner interface{ Run() int }

// Main is a TestMain body: it starts a control plane, stores it in *cp, runs the
// package's tests and stops it.
func Main(m Runner, opts Options, cp **ControlPlane) {
	os.Exit(Run(m, opts, cp))
}

// Run is Main without the exit: it returns the exit code for a TestMain that has more
// to clean up.
func Run(m Runner, opts Options, cp **ControlPlane) int {
	started := time.Now()
	c, err := Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtestutil:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "envtestutil: control plane up in %s\n", time.Since(started).Round(10*time.Millisecond))
	*cp = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "envtestutil: stopping control plane:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// NamespaceObject is a Namespace named name with labels.
func NamespaceObject(name string, labels map[string]string) *corev1.Namespace {
	ns := &corev1.Namespace{}
	ns.Name = name
	ns.Labels = labels
	return ns
}

// APIServerPID is the process id of this control plane's kube-apiserver, found by its
// secure port among the running kube-apiserver processes, for benchmarks that read its
// CPU from /proc.
func (c *ControlPlane) APIServerPID() (int, error) {
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		return 0, err
	}
	want := "--secure-port=" + u.Port()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if filepath.Base(args[0]) == "kube-apiserver" && slices.Contains(args, want) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no kube-apiserver process with %s", want)
}
