package webhook

import (
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// Paths of the admission endpoints; manifests/base/webhooks.yaml uses the same.
const (
	PathMutatePods          = "/mutate-pods"
	PathValidatePrivateKeys = "/validate-private-keys"
)

// Install registers every admission handler on the manager's webhook server.
func Install(mgr manager.Manager, cfg *policy.Config) error {
	if err := installKeyValidation(mgr, cfg); err != nil {
		return fmt.Errorf("installing private-key validation: %w", err)
	}
	if err := installPodMutation(mgr, cfg); err != nil {
		return fmt.Errorf("installing sandbox pod mutation: %w", err)
	}
	return nil
}

// CacheByObject limits what the manager's cache holds for the webhook's lookups.
func CacheByObject(cfg *policy.Config) map[client.Object]cache.ByObject {
	return podMutationCacheByObject(cfg)
}
