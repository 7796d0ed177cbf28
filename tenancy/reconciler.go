package tenancy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// LabelManagedBy marks a binding the reconciler created.
const LabelManagedBy = "app.kubernetes.io/managed-by"

// managerName is the value of LabelManagedBy and the events' reporting controller.
const managerName = "sandbox-webhook"

// BindingReconciler keeps the tenancy ClusterRoleBinding complete. Every event maps to the
// one request named after the binding, so bursts collapse in the work queue.
type BindingReconciler struct {
	// Client reads Namespaces and ServiceAccounts from the cache and writes the binding.
	Client client.Client
	// APIReader reads the binding from the API server, so that every write starts from
	// its current resourceVersion.
	APIReader client.Reader
	Config    *policy.Config
	Recorder  events.EventRecorder
	Metrics   *Metrics
	Log       logr.Logger

	// reportedMismatch is the uid/resourceVersion of the binding whose roleRef mismatch
	// was last reported, so that a lasting mismatch is reported once, not per event.
	reportedMismatch string
}

// Request is the one reconcile request every event maps to.
func (r *BindingReconciler) Request() reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Name: r.Config.Tenancy.BindingName}}
}

// Reconcile brings the binding's subjects to the live tenants' gateway ServiceAccounts
// plus every subject the reconciler did not add.
func (r *BindingReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var namespaces corev1.NamespaceList
	if err := r.Client.List(ctx, &namespaces, client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing namespaces: %w", err)
	}
	var accounts corev1.ServiceAccountList
	if err := r.Client.List(ctx, &accounts, client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing service accounts: %w", err)
	}
	tenants := DesiredSubjects(r.Config, namespaces.Items, accounts.Items)
	r.Metrics.Tenants.Set(float64(tenants.Namespaces))

	retriable := func(err error) bool {
		// NotFound: the binding went between read and update; the next attempt creates it.
		return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err)
	}
	err := retry.OnError(retry.DefaultRetry, retriable, func() error {
		err := r.apply(ctx, tenants.Subjects)
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			r.Metrics.Conflicts.Inc()
		}
		return err
	})
	return reconcile.Result{}, err
}

func (r *BindingReconciler) apply(ctx context.Context, desired []rbacv1.Subject) error {
	tn := r.Config.Tenancy
	log := r.Log.WithValues("clusterRoleBinding", tn.BindingName)
	var b rbacv1.ClusterRoleBinding
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: tn.BindingName}, &b)
	if apierrors.IsNotFound(err) {
		log.Info("creating the binding", "subjects", len(desired))
		return r.create(ctx, nil, nil, desired)
	}
	if err != nil {
		return fmt.Errorf("reading ClusterRoleBinding %s: %w", tn.BindingName, err)
	}
	managed := ParseManagedSubjects(b.Annotations[AnnotationManagedSubjects])

	if want := r.roleRef(); b.RoleRef != want {
		r.reportMismatch(log, &b, want)
		if !tn.RecreateOnRoleRefMismatch {
			r.Metrics.RoleRefMismatch.Set(1)
			return nil
		}
		// roleRef is immutable: delete exactly what was read, then create it anew with
		// the subjects the reconciler did not add.
		precondition := metav1.Preconditions{UID: &b.UID, ResourceVersion: &b.ResourceVersion}
		if err := r.Client.Delete(ctx, &b, client.Preconditions(precondition)); err != nil {
			return fmt.Errorf("deleting ClusterRoleBinding %s to fix its roleRef: %w", tn.BindingName, err)
		}
		r.Metrics.Writes.WithLabelValues("delete").Inc()
		log.Info("deleted the binding to recreate it with the configured roleRef", "roleRef", want.Name)
		foreign := MergeSubjects(b.Subjects, managed, nil).Subjects
		return r.create(ctx, &b, foreign, desired)
	}
	r.Metrics.RoleRefMismatch.Set(0)

	merged := MergeSubjects(b.Subjects, managed, desired)
	r.Metrics.ManagedSubjects.Set(float64(len(merged.Managed)))
	value := FormatManagedSubjects(merged.Managed)
	if slices.Equal(b.Subjects, merged.Subjects) && b.Annotations[AnnotationManagedSubjects] == value {
		return nil
	}
	b.Subjects = merged.Subjects
	if b.Annotations == nil {
		b.Annotations = map[string]string{}
	}
	b.Annotations[AnnotationManagedSubjects] = value
	if err := r.Client.Update(ctx, &b); err != nil {
		return fmt.Errorf("updating ClusterRoleBinding %s: %w", tn.BindingName, err)
	}
	r.Metrics.Writes.WithLabelValues("update").Inc()
	log.V(1).Info("updated the binding", "subjects", len(merged.Subjects), "managed", len(merged.Managed))
	return nil
}

// create makes the binding with the configured roleRef, keeping foreign subjects and the
// labels and annotations of old, the binding it replaces, if any.
func (r *BindingReconciler) create(ctx context.Context, old *rbacv1.ClusterRoleBinding, foreign, desired []rbacv1.Subject) error {
	merged := MergeSubjects(foreign, nil, desired)
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{
			Name:        r.Config.Tenancy.BindingName,
			Labels:      map[string]string{},
			Annotations: map[string]string{},
		},
		RoleRef:  r.roleRef(),
		Subjects: merged.Subjects,
	}
	if old != nil {
		maps.Copy(b.Labels, old.Labels)
		maps.Copy(b.Annotations, old.Annotations)
	}
	b.Labels[LabelManagedBy] = managerName
	b.Annotations[AnnotationManagedSubjects] = FormatManagedSubjects(merged.Managed)
	if err := r.Client.Create(ctx, b); err != nil {
		return fmt.Errorf("creating ClusterRoleBinding %s: %w", b.Name, err)
	}
	r.Metrics.Writes.WithLabelValues("create").Inc()
	r.Metrics.ManagedSubjects.Set(float64(len(merged.Managed)))
	r.Metrics.RoleRefMismatch.Set(0)
	return nil
}

func (r *BindingReconciler) roleRef() rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.Config.Tenancy.ClusterRoleName}
}

// reportMismatch records a roleRef mismatch as a Warning event on the binding and as a
// condition in the log, once per version of the binding.
func (r *BindingReconciler) reportMismatch(log logr.Logger, b *rbacv1.ClusterRoleBinding, want rbacv1.RoleRef) {
	version := string(b.UID) + "/" + b.ResourceVersion
	if r.reportedMismatch == version {
		return
	}
	r.reportedMismatch = version
	action := "left alone: roleRef is immutable; set tenancy.recreateOnRoleRefMismatch to let the reconciler recreate it, or fix it by hand"
	if r.Config.Tenancy.RecreateOnRoleRefMismatch {
		action = "recreating it with the configured roleRef"
	}
	msg := fmt.Sprintf("roleRef is %s %s, configured is %s %s; %s", b.RoleRef.Kind, b.RoleRef.Name, want.Kind, want.Name, action)
	if r.Recorder != nil {
		r.Recorder.Eventf(b, nil, corev1.EventTypeWarning, "RoleRefMismatch", "Reconcile", "%s", msg)
	}
	log.Info("binding condition", "type", "RoleRefMatches", "status", metav1.ConditionFalse, "reason", "RoleRefMismatch", "message", msg)
}

// batchingHandler maps every event it accepts to one request and adds it after a delay.
// The queue keeps a waiting request's earliest time, so every event of a burst lands in
// the same reconcile.
type batchingHandler struct {
	request reconcile.Request
	delay   time.Duration
	// accept filters events by object; nil accepts all.
	accept func(client.Object) bool
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func (h *batchingHandler) enqueue(q queue, objs ...client.Object) {
	for _, o := range objs {
		if h.accept == nil || (o != nil && h.accept(o)) {
			q.AddAfter(h.request, h.delay)
			return
		}
	}
}

func (h *batchingHandler) Create(_ context.Context, e event.CreateEvent, q queue) {
	h.enqueue(q, e.Object)
}

func (h *batchingHandler) Update(_ context.Context, e event.UpdateEvent, q queue) {
	h.enqueue(q, e.ObjectOld, e.ObjectNew)
}

func (h *batchingHandler) Delete(_ context.Context, e event.DeleteEvent, q queue) {
	h.enqueue(q, e.Object)
}

func (h *batchingHandler) Generic(_ context.Context, e event.GenericEvent, q queue) {
	h.enqueue(q, e.Object)
}
