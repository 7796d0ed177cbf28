// Package inprocess runs the webhook and the tenancy reconciler in the test process
// against an envtest control plane, as serve runs them, for suites that need both.
package inprocess

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr/funcr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sandbox-webhook/sandbox-webhook/manifests"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/tenancy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
	"github.com/sandbox-webhook/sandbox-webhook/webhook"
)

// Start installs the gateway ClusterRole and starts, on the control plane, one manager
// with the webhook and the tenancy reconciler, as serve does (without leader election:
// one replica), with the default config but for a short tenancy batch delay. It returns
// the config once the webhook serves and the caches have synced; the manager stops with
// ctx. suite names the suite in what it prints.
func Start(ctx context.Context, cp *envtestutil.ControlPlane, suite string) (*policy.Config, error) {
	cfg := policy.DefaultConfig()
	cfg.Tenancy.BatchDelay.Duration = 50 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	role, err := manifests.GatewayClusterRole()
	if err != nil {
		return nil, err
	}
	if err := cp.Client.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	// Errors only, so that the suite's output stays readable.
	log := funcr.New(func(prefix, args string) {
		if strings.Contains(args, `"error"`) {
			fmt.Fprintln(os.Stderr, prefix, args)
		}
	}, funcr.Options{})
	ctrl.SetLogger(log)
	byObject := map[client.Object]cache.ByObject{}
	maps.Copy(byObject, webhook.CacheByObject(cfg))
	maps.Copy(byObject, tenancy.CacheByObject(cfg))
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{
		Scheme:                 cp.Scheme,
		Logger:                 log,
		Cache:                  cache.Options{ByObject: byObject},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host: cp.Webhook.Host, Port: cp.Webhook.Port, CertDir: cp.Webhook.CertDir,
		}),
	})
	if err != nil {
		return nil, err
	}
	if err := webhook.Install(mgr, cfg); err != nil {
		return nil, err
	}
	if err := tenancy.Setup(mgr, cfg); err != nil {
		return nil, err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, suite+": manager stopped:", err)
		}
	}()
	started := mgr.GetWebhookServer().StartedChecker()
	deadline := time.Now().Add(30 * time.Second)
	for started(&http.Request{}) != nil {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("webhook server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("cache did not sync")
	}
	return cfg, nil
}
