package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// AuditKeyFindings is the audit annotation (under the webhook's name) that lists the
// private keys a request carried: field, kind and fingerprint, never the key.
const AuditKeyFindings = "private-key-findings"

func installKeyValidation(mgr manager.Manager, cfg *policy.Config) error {
	v, err := NewKeyValidator(cfg, ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	mgr.GetWebhookServer().Register(PathValidatePrivateKeys, v)
	return nil
}

// NewKeyValidator returns a KeyValidator whose rejection counter is registered with reg.
func NewKeyValidator(cfg *policy.Config, reg prometheus.Registerer) (*KeyValidator, error) {
	rejections, err := newKeyRejections(reg)
	if err != nil {
		return nil, err
	}
	gate, err := newReviewGate(cfg.Server, reg, "validate-private-keys")
	if err != nil {
		return nil, err
	}
	return &KeyValidator{Config: cfg, rejections: rejections, gate: gate}, nil
}

// KeyValidator denies objects whose spec embeds a raw private key: Pods (including the
// ephemeralcontainers subresource), Sandbox CRs, workloads and ConfigMaps. Secrets are
// always allowed: a Secret is where a key belongs.
type KeyValidator struct {
	Config     *policy.Config
	rejections *prometheus.CounterVec
	gate       *reviewGate
	memory     reviewMemoryPool
}

// ServeHTTP answers AdmissionReview v1 requests. The review is read with the same
// bounded reader as the mutating webhook's, and only the object's raw JSON is kept for
// the scan. A panic answers 500, so that the API server applies the failure policy.
func (v *KeyValidator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mem := v.memory.get()
	defer func() {
		if p := recover(); p != nil {
			http.Error(w, "sandbox-webhook: internal error while inspecting the object", http.StatusInternalServerError)
			return
		}
		v.memory.put(mem)
	}()
	ctx, cancel := reviewContext(w, r)
	defer cancel()
	var err error
	if mem.body, err = readReviewBody(mem.body, r); err != nil {
		writeReviewWith(w, "", admission.Errored(http.StatusBadRequest, err), mem)
		return
	}
	release, err := v.gate.enter(ctx)
	if err != nil {
		refuseBusy(w, err)
		return
	}
	defer release()
	req := &mem.req
	if err := mem.reader.readAdmissionReview(mem.body, req, nil); err != nil {
		writeReviewWith(w, "", admission.Errored(http.StatusBadRequest, err), mem)
		return
	}
	writeReviewWith(w, req.UID, v.decide(ctx, req), mem)
}

// Handle implements admission.Handler.
func (v *KeyValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	return v.decide(ctx, &reviewRequest{
		UID: req.UID, Kind: req.Kind, Resource: req.Resource, SubResource: req.SubResource,
		Name: req.Name, Namespace: req.Namespace, Operation: req.Operation,
		Object: req.Object.Raw, OldObject: req.OldObject.Raw,
	})
}

func (v *KeyValidator) decide(ctx context.Context, req *reviewRequest) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	kind := req.Kind.Kind
	// The webhook configuration's namespaceSelector is only the first filter.
	if kind == "Secret" || len(req.Object) == 0 || v.Config.IsKeyValidationExcluded(req.Namespace) {
		return admission.Allowed("")
	}
	resource := req.Resource.Resource
	if req.SubResource != "" {
		resource += "/" + req.SubResource
	}
	// The scan stops, and the object is denied as uninspected, when the review's
	// deadline passes.
	findings, err := policy.DetectPrivateKeysUntil(ctx.Done(), req.Object, kind, v.Config)
	if err != nil {
		var limit *policy.KeyLimitError
		if errors.As(err, &limit) {
			v.rejections.WithLabelValues(kindUninspected, resource).Inc()
			resp := admission.Denied(limit.Error() + "; it is denied rather than admitted uninspected. Move large or encoded data into a Secret or a volume.")
			resp.AuditAnnotations = map[string]string{AuditKeyFindings: "uninspected: " + limit.Reason}
			return resp
		}
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("reading the %s: %w", kind, err))
	}
	if len(findings) == 0 {
		return admission.Allowed("")
	}

	// An update may keep a key the object already held at the same field (say, to
	// remove a finalizer from an object created before this webhook); it may not add
	// one, nor move one to another field.
	var existing map[string]bool
	if req.Operation == admissionv1.Update && len(req.OldObject) > 0 {
		if old, err := policy.DetectPrivateKeysUntil(ctx.Done(), req.OldObject, kind, v.Config); err == nil {
			existing = map[string]bool{}
			for _, f := range old {
				existing[f.Field+"\x00"+f.Fingerprint] = true
			}
		}
	}
	var rejecting []policy.KeyFinding
	var warnings []string
	for _, f := range findings {
		switch {
		case f.Malformed:
			warnings = append(warnings, fmt.Sprintf("%s: a block labelled as a private key holds public key material; it is allowed, but check what was meant", f.Field))
		case f.Allowed:
			warnings = append(warnings, fmt.Sprintf("%s: %s %s is allowed by privateKeys.allowedFingerprints", f.Field, f.Kind, f.Fingerprint))
		case existing[f.Field+"\x00"+f.Fingerprint]:
			warnings = append(warnings, fmt.Sprintf("%s: the object already held this private key (%s, %s); move it to a Secret", f.Field, f.Kind, f.Fingerprint))
		default:
			rejecting = append(rejecting, f)
		}
	}
	audit := map[string]string{AuditKeyFindings: auditValue(findings)}
	if len(rejecting) == 0 {
		resp := admission.Allowed("").WithWarnings(warnings...)
		resp.AuditAnnotations = audit
		return resp
	}
	for _, f := range rejecting {
		v.rejections.WithLabelValues(f.Kind, resource).Inc()
	}
	resp := admission.Denied(policy.KeyDenialMessage(rejecting)).WithWarnings(warnings...)
	resp.AuditAnnotations = audit
	return resp
}

// auditValue is the findings as compact JSON.
func auditValue(findings []policy.KeyFinding) string {
	b, err := json.Marshal(findings)
	if err != nil {
		var parts []string
		for _, f := range findings {
			parts = append(parts, f.String())
		}
		return strings.Join(parts, "; ")
	}
	return string(b)
}
