package doctor

// The doctor suite runs doctor against one control plane with the webhook and the
// tenancy reconciler running as serve runs them, in a healthy state and in broken ones.

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
	"github.com/sandbox-webhook/sandbox-webhook/test/inprocess"
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
	var err error
	if cfg, err = inprocess.Start(ctx, cp, "doctor suite"); err != nil {
		fmt.Fprintln(os.Stderr, "doctor suite:", err)
		return 1
	}
	return w.m.Run()
}
