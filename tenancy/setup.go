package tenancy

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// ControllerName names the reconciler in logs, metrics and events.
const ControllerName = "tenancy-binding"

// Setup adds the binding reconciler to mgr; it runs under the manager's leader election.
// Its metrics go to the controller-runtime registry that the manager serves.
func Setup(mgr manager.Manager, cfg *policy.Config) error {
	m, err := NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return fmt.Errorf("registering tenancy metrics: %w", err)
	}
	r := &BindingReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Config:    cfg,
		Recorder:  mgr.GetEventRecorder(managerName),
		Metrics:   m,
		Log:       mgr.GetLogger().WithName("tenancy"),
	}
	return r.SetupWithManager(mgr)
}

// SetupWithManager registers r's watches with mgr: tenant Namespaces, the gateway
// ServiceAccounts, the binding itself, and one request at start so that a missing binding
// is created even when nothing changes.
func (r *BindingReconciler) SetupWithManager(mgr manager.Manager) error {
	req := r.Request()
	delay := r.Config.Tenancy.BatchDelay.Duration
	isTenant := func(o client.Object) bool { return r.Config.IsTenantNamespace(o.GetName(), o.GetLabels()) }
	start := source.Func(func(_ context.Context, q queue) error {
		q.Add(req)
		return nil
	})
	return builder.ControllerManagedBy(mgr).
		Named(ControllerName).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Watches(&corev1.Namespace{}, &batchingHandler{request: req, delay: delay, accept: isTenant}).
		Watches(&corev1.ServiceAccount{}, &batchingHandler{request: req, delay: delay}).
		Watches(&rbacv1.ClusterRoleBinding{}, &batchingHandler{request: req, delay: delay}).
		WatchesRawSource(start).
		Complete(r)
}

// CacheByObject limits what the manager's cache holds for the reconciler: only the
// gateway ServiceAccounts, each without what the reconciler never reads, and the one
// binding. Namespaces are configured by the webhook package (webhook.CacheByObject keeps
// their names, labels, deletion timestamp and phase: what DesiredSubjects reads).
func CacheByObject(cfg *policy.Config) map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.ServiceAccount{}: {
			Field:     fields.OneTermEqualSelector("metadata.name", cfg.Tenancy.ServiceAccountName),
			Transform: StripServiceAccount,
		},
		&rbacv1.ClusterRoleBinding{}: {
			Field: fields.OneTermEqualSelector("metadata.name", cfg.Tenancy.BindingName),
		},
	}
}

// StripServiceAccount keeps of a cached ServiceAccount its name, namespace, uid,
// resourceVersion, labels and deletion timestamp: all that DesiredSubjects reads.
// Annotations, managed fields and the secret references are dropped.
func StripServiceAccount(obj any) (any, error) {
	sa, ok := obj.(*corev1.ServiceAccount)
	if !ok {
		return obj, nil
	}
	return &corev1.ServiceAccount{
		TypeMeta: sa.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              sa.Name,
			Namespace:         sa.Namespace,
			UID:               sa.UID,
			ResourceVersion:   sa.ResourceVersion,
			Labels:            sa.Labels,
			DeletionTimestamp: sa.DeletionTimestamp,
		},
	}, nil
}

var _ toolscache.TransformFunc = StripServiceAccount
