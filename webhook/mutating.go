package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sandbox-webhook/sandbox-webhook/internal/collectors"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// SandboxPodInjector is the mutating admission handler for sandbox pods: it looks up
// the pod's Namespace and the namespace's inference credentials and lets policy.Inject
// decide.
type SandboxPodInjector struct {
	cfg *policy.Config
	// reader is the manager's cache: Namespaces, and only the labelled Secrets.
	reader client.Reader
	// live reads a Namespace that the cache has not seen yet; nil: none.
	live    client.Reader
	metrics *injectionMetrics
	// credentialLabels selects the labelled Secrets, built once rather than per lookup.
	credentialLabels client.MatchingLabelsSelector
	// memory keeps the buffers of finished requests of ServeHTTP.
	memory reviewMemoryPool
	gate   *reviewGate
}

// NewSandboxPodInjector returns the handler. reader must answer from a cache.
func NewSandboxPodInjector(cfg *policy.Config, reader client.Reader, reg prometheus.Registerer) (*SandboxPodInjector, error) {
	m, err := newInjectionMetrics(reg)
	if err != nil {
		return nil, err
	}
	gate, err := newReviewGate(cfg.Server, reg, "mutate-pods")
	if err != nil {
		return nil, err
	}
	return &SandboxPodInjector{
		cfg: cfg, reader: reader, metrics: m, gate: gate,
		credentialLabels: client.MatchingLabelsSelector{Selector: credentialLookupSelector(cfg)},
	}, nil
}

func installPodMutation(mgr manager.Manager, cfg *policy.Config) error {
	// Register the informers now so that they start and sync with the manager instead
	// of on the first admission request.
	for _, obj := range []client.Object{&corev1.Namespace{}, &corev1.Secret{}} {
		if _, err := mgr.GetCache().GetInformer(context.Background(), obj, cache.BlockUntilSynced(false)); err != nil {
			return fmt.Errorf("watching %T: %w", obj, err)
		}
	}
	h, err := NewSandboxPodInjector(cfg, mgr.GetCache(), metrics.Registry)
	if err != nil {
		return err
	}
	h.ReadNamespacesLive(mgr.GetAPIReader())
	mgr.GetWebhookServer().Register(PathMutatePods, h)
	return nil
}

// podMutationCacheByObject keeps only Secrets with the inference-provider label in the
// cache, without managed fields or annotations (kubectl's last-applied annotation would
// hold a second copy of the data), and of each Namespace only what the tenant checks of
// the webhook and the tenancy reconciler read.
func podMutationCacheByObject(cfg *policy.Config) map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.Secret{}: {
			Label:     credentialSelector(cfg),
			Transform: stripSecretMetadata,
		},
		&corev1.Namespace{}: {
			Transform: StripNamespace,
		},
	}
}

// StripNamespace keeps of a cached Namespace its name, uid, resourceVersion, labels,
// deletion timestamp and phase: all that the tenant checks read. Annotations (kubectl's
// last-applied copy), managed fields, finalizers and conditions are dropped.
func StripNamespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{
		TypeMeta: ns.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              ns.Name,
			UID:               ns.UID,
			ResourceVersion:   ns.ResourceVersion,
			Labels:            ns.Labels,
			DeletionTimestamp: ns.DeletionTimestamp,
		},
		Status: corev1.NamespaceStatus{Phase: ns.Status.Phase},
	}, nil
}

var _ toolscache.TransformFunc = StripNamespace

func credentialSelector(cfg *policy.Config) labels.Selector {
	req, err := labels.NewRequirement(cfg.Inference.ProviderLabel, selection.Exists, nil)
	if err != nil { // the label key is validated with the config
		return labels.Nothing()
	}
	return labels.NewSelector().Add(*req)
}

func stripSecretMetadata(obj any) (any, error) {
	if s, ok := obj.(*corev1.Secret); ok {
		s.ManagedFields = nil
		s.Annotations = nil
	}
	return obj, nil
}

var _ toolscache.TransformFunc = stripSecretMetadata

// credentialLookupSelector is the selector client.HasLabels builds for the provider
// label on every List.
func credentialLookupSelector(cfg *policy.Config) labels.Selector {
	sel := labels.NewSelector()
	if req, err := labels.NewRequirement(cfg.Inference.ProviderLabel, selection.Exists, nil); err == nil {
		sel = sel.Add(*req)
	}
	return sel
}

// Handle decides the injection for one pod CREATE.
func (h *SandboxPodInjector) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return h.done("ignored", admission.Allowed(""))
	}
	pod, err := decodeInjectionPod(req.Object.Raw, h.cfg)
	if err != nil {
		return h.done("error", admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the pod: %w", err)))
	}
	return h.handlePod(ctx, req.Namespace, pod, &corev1.Namespace{})
}

// handlePod decides for a decoded pod of a CREATE request in namespace nsName. The
// Namespace is read into ns.
func (h *SandboxPodInjector) handlePod(ctx context.Context, nsName string, pod *policy.InjectionPod, ns *corev1.Namespace) admission.Response {
	if !policy.IsSandboxPod(pod, h.cfg) {
		return h.done(string(policy.OutcomeNotSandbox), admission.Allowed(""))
	}
	if nsName == "" {
		nsName = pod.Namespace
	}
	if h.cfg.IsExcludedNamespace(nsName) {
		return h.done(string(policy.OutcomeNotTenant), admission.Allowed(""))
	}
	ns, err := h.namespace(ctx, nsName, ns)
	if err != nil {
		return h.done("error", admission.Errored(http.StatusServiceUnavailable, err))
	}
	if ns == nil || !policy.IsInjectedNamespace(nsName, ns, h.cfg) {
		return h.done(string(policy.OutcomeNotTenant), admission.Allowed(""))
	}

	d := policy.Inject(policy.InjectionInput{
		Pod:             pod,
		Namespace:       nsName,
		NamespaceObject: ns,
		Credential:      h.credential(ctx, nsName),
	}, h.cfg)

	var resp admission.Response
	switch {
	case d.Outcome == policy.OutcomeDenied:
		resp = admission.Denied(d.Denial)
	case len(d.Patch) > 0:
		resp = admission.Response{Patches: d.Patch, AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true}}
	default:
		resp = admission.Allowed("")
	}
	resp.Warnings = d.Warnings
	resp.AuditAnnotations = d.AuditAnnotations
	return h.done(string(d.Outcome), resp)
}

// ReadNamespacesLive makes the handler read a Namespace from r (the API server) when
// the cache does not hold it yet. A pod can only be created in a namespace that exists,
// so a miss means the cache lags behind a namespace created a moment ago: without the
// live read, the first sandbox pods of a new tenant would go uninjected.
func (h *SandboxPodInjector) ReadNamespacesLive(r client.Reader) { h.live = r }

// namespace reads the pod's Namespace from the cache into ns, or from the API server
// when the cache has not seen it yet; nil when it does not exist.
func (h *SandboxPodInjector) namespace(ctx context.Context, name string, ns *corev1.Namespace) (*corev1.Namespace, error) {
	lookup := newLookupContext(ctx, h.cfg.Inference.LookupTimeout.Duration)
	defer lookup.stop()
	err := h.reader.Get(lookup, client.ObjectKey{Name: name}, ns, client.UnsafeDisableDeepCopy)
	if apierrors.IsNotFound(err) && h.live != nil {
		err = h.live.Get(ctx, client.ObjectKey{Name: name}, ns)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading namespace %s: %w", name, err)
	}
	return ns, nil
}

// credential classifies the namespace's labelled Secrets. A lookup that cannot be
// answered in time counts as "no usable credential": inference is optional and must
// never block a sandbox.
func (h *SandboxPodInjector) credential(ctx context.Context, ns string) policy.InferenceCredential {
	lookup := newLookupContext(ctx, h.cfg.Inference.LookupTimeout.Duration)
	defer lookup.stop()
	var secrets corev1.SecretList
	err := h.reader.List(lookup, &secrets, client.InNamespace(ns), h.credentialLabels, client.UnsafeDisableDeepCopy)
	if err != nil {
		why := "the lookup failed"
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(lookup.Err(), context.DeadlineExceeded) {
			why = fmt.Sprintf("no answer within %s", h.cfg.Inference.LookupTimeout.Duration)
		}
		h.metrics.lookupFailures.Inc()
		return policy.InferenceCredentialUnavailable(why)
	}
	c := policy.ClassifyInferenceCredentials(secrets.Items, h.cfg)
	h.metrics.credentials.WithLabelValues(string(c.State)).Inc()
	return c
}

// lookupContext bounds one cache lookup by a timeout, as context.WithTimeout does, but
// starts the timer only when something waits on Done: a cache answers from memory
// without waiting, and a timer per lookup costs more than the lookup.
type lookupContext struct {
	context.Context // the request's
	deadline        time.Time

	mu     sync.Mutex
	timed  context.Context // made on the first Done
	cancel context.CancelFunc
	err    error // once set, what Err returns
}

func newLookupContext(parent context.Context, timeout time.Duration) *lookupContext {
	deadline := time.Now().Add(timeout)
	if d, ok := parent.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return &lookupContext{Context: parent, deadline: deadline}
}

func (c *lookupContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lookupContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timed == nil {
		c.timed, c.cancel = context.WithDeadline(c.Context, c.deadline)
		if c.err != nil {
			c.cancel()
		}
	}
	return c.timed.Done()
}

func (c *lookupContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.err != nil:
	case c.timed != nil:
		return c.timed.Err()
	case c.Context.Err() != nil:
		c.err = c.Context.Err()
	case !time.Now().Before(c.deadline):
		c.err = context.DeadlineExceeded
	}
	return c.err
}

// stop ends the lookup, as the CancelFunc of context.WithTimeout does.
func (c *lookupContext) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.timed != nil {
		c.err = c.timed.Err()
	}
	if c.err == nil {
		c.err = context.Canceled
	}
	if c.timed != nil {
		c.cancel()
	}
}

func (h *SandboxPodInjector) done(outcome string, resp admission.Response) admission.Response {
	h.metrics.requests.WithLabelValues(outcome).Inc()
	return resp
}

// injectionMetrics are the Prometheus counters of the handler.
type injectionMetrics struct {
	requests       *prometheus.CounterVec
	credentials    *prometheus.CounterVec
	lookupFailures prometheus.Counter
}

func newInjectionMetrics(reg prometheus.Registerer) (*injectionMetrics, error) {
	m := &injectionMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandbox_webhook_pod_injections_total",
			Help: "Pod admission requests of the mutating webhook by outcome: injected, unchanged, not-sandbox, not-tenant, denied, ignored, error.",
		}, []string{"outcome"}),
		credentials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandbox_webhook_inference_credentials_total",
			Help: "Inference credential lookups by the state found: usable, none, unknown-type, empty, incompatible, unparsable.",
		}, []string{"state"}),
		lookupFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sandbox_webhook_inference_credential_lookup_failures_total",
			Help: "Inference credential lookups that could not be answered in time; the pod got the flag \"false\".",
		}),
	}
	var err error
	if m.requests, err = collectors.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.credentials, err = collectors.Register(reg, m.credentials); err != nil {
		return nil, err
	}
	if m.lookupFailures, err = collectors.Register(reg, m.lookupFailures); err != nil {
		return nil, err
	}
	return m, nil
}
