package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// benchPod is a sandbox pod of about size bytes of JSON, or with env vars env vars.
func benchPod(size, env int) *corev1.Pod {
	pod := openShellSandboxPod("team-a", "sandbox-bench")
	pod.Spec.ServiceAccountName = "sandbox"
	pod.Spec.Volumes = []corev1.Volume{{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "workspace", MountPath: "/workspace"}}
	for i := 0; ; i++ {
		if env > 0 && i >= env {
			break
		}
		if env == 0 {
			if raw, _ := json.Marshal(pod); len(raw) >= size {
				break
			}
		}
		pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%04d", i), Value: fmt.Sprintf("value-of-setting-%04d", i)})
	}
	// Work for every step: a forbidden key to remove and a managed key to replace.
	pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env,
		corev1.EnvVar{Name: "CLAUDE_CODE_USE_VERTEX", Value: "1"},
		corev1.EnvVar{Name: "ACP_OPENSHELL_INFERENCE", Value: "true"})
	return pod
}

func admissionReviewBody(b testing.TB, pod *corev1.Pod) []byte {
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "7c6f1a2e-bench",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: pod.Namespace,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// benchmarkHandler measures the whole HTTP handler: decode the AdmissionReview and the
// pod, decide, build the patch, encode the response. Lookups answer from memory, as the
// cache does.
func benchmarkHandler(b *testing.B, pod *corev1.Pod) {
	cfg := policy.DefaultConfig()
	reader := &stubReader{
		namespaces: map[string]*corev1.Namespace{"team-a": tenantNamespace("team-a")},
		secrets: []corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "anthropic", Labels: map[string]string{cfg.Inference.ProviderLabel: "anthropic"}},
			Data:       map[string][]byte{"api-key": []byte("placeholder-api-key-value")},
		}},
	}
	wh := newTestInjector(b, cfg, reader)
	body := admissionReviewBody(b, pod)
	b.ReportMetric(float64(len(pod.Spec.Containers[0].Env)), "env")
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, PathMutatePods, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		wh.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	// Check once that the work was done.
	req := httptest.NewRequest(http.MethodPost, PathMutatePods, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	wh.ServeHTTP(rec, req)
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil || !review.Response.Allowed || len(review.Response.Patch) == 0 {
		b.Fatalf("unexpected response: %v %s", err, rec.Body)
	}
}

func BenchmarkMutatingHandler8KiBSandboxPod(b *testing.B) { benchmarkHandler(b, benchPod(8<<10, 0)) }
func BenchmarkMutatingHandler2000Env(b *testing.B)        { benchmarkHandler(b, benchPod(0, 2000)) }
func BenchmarkMutatingHandler4000Env(b *testing.B)        { benchmarkHandler(b, benchPod(0, 4000)) }

// benchmarkDecode measures reading the review and the pod alone.
func benchmarkDecode(b *testing.B, pod *corev1.Pod) {
	cfg := policy.DefaultConfig()
	body := admissionReviewBody(b, pod)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		_, pod, err := decodePodReview(body, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if pod == nil {
			b.Fatal("the pod was not read")
		}
	}
}

func BenchmarkDecodePodReview8KiBSandboxPod(b *testing.B) { benchmarkDecode(b, benchPod(8<<10, 0)) }
func BenchmarkDecodePodReview2000Env(b *testing.B)        { benchmarkDecode(b, benchPod(0, 2000)) }
