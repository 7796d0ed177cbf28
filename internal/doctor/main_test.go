package doctor

// The doctor suite runs doctor against one control plane with the webhook and the
// tenancy reconciler running as serve runs them, in a healthy state and in broken ones.

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"
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

var (
	cp  *envtestutil.ControlPlane
	cfg *policy.Config
)

func TestMain(m *testing.M) {
	envtestutil.Main(&withWebhookAndReconciler{m}, envtestutil.Options{
		WebhookManifests: []string{"manifests/base/webhooks.yaml"},
	}, &cp)
}

type withWebhookAndReconciler struct{ m *testing.M }

func (w *withWebhookAndReconciler) Run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "doctor suite:", err)
		return 1
	}
	return w.m.Run()
}

// start installs the gateway ClusterRole and starts one manager with the webhook and the
// tenancy reconciler, as serve does (without leader election: one replica).
func start(ctx context.Context) error {
	cfg = policy.DefaultConfig()
	cfg.Tenancy.BatchDelay.Duration = 50 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		return err
	}
	role, err := manifests.GatewayClusterRole()
	if err != nil {
		return err
	}
	if err := cp.Client.Create(ctx, role); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
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
		return err
	}
	if err := webhook.Install(mgr, cfg); err != nil {
		return err
	}
	if err := tenancy.Setup(mgr, cfg); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "doctor suite: manager stopped:", err)
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
