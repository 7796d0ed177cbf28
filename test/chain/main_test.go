// Package chain proves the authentication chain the product exists for: a sandbox pod
// injected with a projected token, the token minted from that projection as the kubelet
// would, and the tenant's gateway checking it with a TokenReview under the right the
// shared ClusterRoleBinding gives it. One control plane runs the webhook and the tenancy
// reconciler the way serve does.
package chain

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
	if cfg, err = inprocess.Start(ctx, cp, "chain suite"); err != nil {
		fmt.Fprintln(os.Stderr, "chain suite:", err)
		return 1
	}
	return w.m.Run()
}
