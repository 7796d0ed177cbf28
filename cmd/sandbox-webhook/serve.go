package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/tenancy"
	"github.com/sandbox-webhook/sandbox-webhook/webhook"
)

func serveCommand(args []string, stderr io.Writer) error {
	fs := newServerFlags("serve", stderr, false)
	cfg, log, err := fs.parse(args)
	if err != nil {
		return err
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("finding the cluster: %w", err)
	}
	return serve(ctrl.SetupSignalHandler(), restCfg, cfg, log)
}

// newManager builds the manager that serves the webhooks on every replica and runs the
// tenancy reconciler under leader election. certDir overrides cfg.Server.CertDir (dev).
func newManager(restCfg *rest.Config, cfg *policy.Config, log logr.Logger, host, certDir string) (manager.Manager, error) {
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
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Logger:                  log,
		Cache:                   cache.Options{ByObject: byObject},
		Metrics:                 metricsserver.Options{BindAddress: s.MetricsBindAddress},
		HealthProbeBindAddress:  s.HealthProbeBindAddress,
		LeaderElection:          cfg.TenancyEnabled() && cfg.LeaderElectionEnabled(),
		LeaderElectionID:        s.LeaderElectionID,
		LeaderElectionNamespace: s.LeaderElectionNamespace,
		LeaseDuration:           &lease,
		RenewDeadline:           &renew,
		RetryPeriod:             &retry,
		// Give up the lease on shutdown so another replica takes over at once.
		LeaderElectionReleaseOnCancel: true,
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host:     host,
			Port:     s.Port,
			CertDir:  certDir,
			CertName: s.CertName,
			KeyName:  s.KeyName,
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
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return nil, err
		}
	}
	return mgr, nil
}

func serve(ctx context.Context, restCfg *rest.Config, cfg *policy.Config, log logr.Logger) error {
	mgr, err := newManager(restCfg, cfg, log, "", "")
	if err != nil {
		return err
	}
	log.Info("starting", "port", cfg.Server.Port,
		"certificate", filepath.Join(cfg.Server.CertDir, cfg.Server.CertName),
		"tenancy", cfg.TenancyEnabled(), "leaderElection", cfg.LeaderElectionEnabled())
	return mgr.Start(ctx)
}
