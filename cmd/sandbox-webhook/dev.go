package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sandbox-webhook/sandbox-webhook/manifests"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// devKubeVersion is the API server version `make envtest` builds.
const devKubeVersion = "1.37.2"

func devCommand(args []string, stdout, stderr io.Writer) error {
	fs := newServerFlags("dev", stderr, true)
	assets := fs.String("assets", "", "folder with kube-apiserver and etcd (default: $KUBEBUILDER_ASSETS, else bin/k8s/"+devKubeVersion+")")
	kubeconfigOut := fs.String("kubeconfig-out", "bin/dev/kubeconfig", "where to write a kubeconfig for the dev API server")
	tenant := fs.String("tenant", "tenant-dev", "tenant namespace to create, with its gateway ServiceAccount (empty: none)")
	metricsAddr := fs.String("metrics-bind-address", "0", "metrics address in dev mode (0: off)")
	cfg, _, err := fs.parse(args)
	if err != nil {
		return err
	}
	cfg.Server.MetricsBindAddress = *metricsAddr
	cfg.Server.HealthProbeBindAddress = "0"
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
	ctx := ctrl.SetupSignalHandler()
	return runDev(ctx, cfg, devOptions{assets: *assets, kubeconfigOut: *kubeconfigOut, tenant: *tenant}, stdout)
}

type devOptions struct {
	assets, kubeconfigOut, tenant string
}

func runDev(ctx context.Context, cfg *policy.Config, opts devOptions, stdout io.Writer) error {
	crds, err := manifests.CRDs()
	if err != nil {
		return err
	}
	// envtest points the shipped configurations at this process.
	mutating, validating, err := manifests.WebhookConfigurations()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dev: starting kube-apiserver and etcd from %s\n", opts.assets)
	env := &envtest.Environment{
		BinaryAssetsDirectory:    opts.assets,
		CRDInstallOptions:        envtest.CRDInstallOptions{CRDs: crds},
		WebhookInstallOptions:    envtest.WebhookInstallOptions{MutatingWebhooks: mutating, ValidatingWebhooks: validating},
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
	restCfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("dev: starting the API server: %w", err)
	}
	defer func() {
		fmt.Fprintln(stdout, "dev: stopping the API server")
		_ = env.Stop()
	}()

	c, err := client.New(restCfg, client.Options{})
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, c, cfg.Server.Namespace, nil); err != nil {
		return err
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
	user, err := env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("dev: creating the dev user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(opts.kubeconfigOut), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(opts.kubeconfigOut, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("dev: writing kubeconfig: %w", err)
	}

	w := env.WebhookInstallOptions
	cfg.Server.Port = w.LocalServingPort
	mgr, err := newManager(restCfg, cfg, ctrl.Log, w.LocalServingHost, w.LocalServingCertDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dev: API server %s\n", restCfg.Host)
	fmt.Fprintf(stdout, "dev: webhook serving on https://%s:%d\n", w.LocalServingHost, w.LocalServingPort)
	if opts.tenant != "" {
		fmt.Fprintf(stdout, "dev: tenant namespace %s (label sandbox-webhook.io/tenant=true) with ServiceAccount %s\n", opts.tenant, cfg.Tenancy.ServiceAccountName)
	}
	fmt.Fprintf(stdout, "dev: ready; try: kubectl --kubeconfig %s apply -f manifests/examples/sandbox-pod.yaml\n", opts.kubeconfigOut)
	fmt.Fprintln(stdout, "dev: press Ctrl-C to stop")
	if err := mgr.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func ensureNamespace(ctx context.Context, c client.Client, name string, labels map[string]string) error {
	ns := &corev1.Namespace{}
	ns.Name, ns.Labels = name, labels
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("dev: creating namespace %s: %w", name, err)
	}
	return nil
}
