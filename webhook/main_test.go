package webhook

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

// The package's one control plane: the real API server calls this package's handlers
// over TLS through manifests/base/webhooks.yaml, served by a manager configured with
// testConfig.
var (
	cp         *envtestutil.ControlPlane
	testConfig *policy.Config
)

func TestMain(m *testing.M) {
	envtestutil.Main(&withWebhookServer{m}, envtestutil.Options{
		WebhookManifests: []string{"manifests/base/webhooks.yaml"},
	}, &cp)
}

// withWebhookServer starts the webhook manager once the control plane is up.
type withWebhookServer struct{ m *testing.M }

func (w *withWebhookServer) Run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := startWebhookServer(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "webhook suite:", err)
		return 1
	}
	return w.m.Run()
}

func startWebhookServer(ctx context.Context) error {
	testConfig = policy.DefaultConfig()
	// Short lookups keep the "cannot answer in time" path testable without slowing others.
	testConfig.Inference.LookupTimeout.Duration = 2 * time.Second
	if err := testConfig.Validate(); err != nil {
		return err
	}
	log := zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr))
	ctrl.SetLogger(log)
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{
		Scheme:                 cp.Scheme,
		Logger:                 log,
		Cache:                  cache.Options{ByObject: CacheByObject(testConfig)},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host: cp.Webhook.Host, Port: cp.Webhook.Port, CertDir: cp.Webhook.CertDir,
		}),
	})
	if err != nil {
		return err
	}
	if err := Install(mgr, testConfig); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "webhook suite: manager stopped:", err)
		}
	}()
	started := mgr.GetWebhookServer().StartedChecker()
	deadline := time.Now().Add(30 * time.Second)
	for started(&http.Request{}) != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("cache did not sync")
	}
	return nil
}
