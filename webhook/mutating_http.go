package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	sigsjson "sigs.k8s.io/json"
)

// maxReviewBytes bounds a request body, as the API server bounds objects.
const maxReviewBytes = 7 << 20

// podAdmissionReview is an AdmissionReview v1 whose object decodes straight into a Pod:
// one decoding pass over the request instead of one for the review and one for its raw
// object. Fields the handler does not use (oldObject, userInfo, options) are skipped.
type podAdmissionReview struct {
	metav1.TypeMeta `json:",inline"`
	Request         *podAdmissionRequest `json:"request"`
}

type podAdmissionRequest struct {
	UID         types.UID                   `json:"uid"`
	Kind        metav1.GroupVersionKind     `json:"kind"`
	Resource    metav1.GroupVersionResource `json:"resource"`
	SubResource string                      `json:"subResource,omitempty"`
	Namespace   string                      `json:"namespace,omitempty"`
	Operation   admissionv1.Operation       `json:"operation"`
	Object      *corev1.Pod                 `json:"object,omitempty"`
}

// ServeHTTP answers AdmissionReview v1 requests for pods.
func (h *SandboxPodInjector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	review, err := readPodReview(r)
	if err != nil {
		h.metrics.requests.WithLabelValues("error").Inc()
		writeReview(w, "", admission.Errored(http.StatusBadRequest, err))
		return
	}
	req := review.Request
	var resp admission.Response
	switch {
	case req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || req.SubResource != "" || req.Object == nil:
		resp = h.done("ignored", admission.Allowed(""))
	default:
		resp = h.handlePod(r.Context(), req.Namespace, req.Object)
	}
	writeReview(w, req.UID, resp)
}

func readPodReview(r *http.Request) (*podAdmissionReview, error) {
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("method %s: admission reviews are POSTed", r.Method)
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return nil, fmt.Errorf("content type %q: want application/json", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request: %w", err)
	}
	if len(body) > maxReviewBytes {
		return nil, fmt.Errorf("request larger than %d bytes", maxReviewBytes)
	}
	review := &podAdmissionReview{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, review); err != nil {
		return nil, fmt.Errorf("decoding the admission review: %w", err)
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("%s %s: want an AdmissionReview of %s", review.APIVersion, review.Kind, admissionv1.SchemeGroupVersion)
	}
	if review.Request == nil {
		return nil, errors.New("admission review without a request")
	}
	return review, nil
}

func writeReview(w http.ResponseWriter, uid types.UID, resp admission.Response) {
	if err := resp.Complete(admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: uid}}); err != nil {
		resp = admission.Errored(http.StatusInternalServerError, err)
		resp.UID = uid
	}
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: &resp.AdmissionResponse,
	}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, "encoding the admission response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
