package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"testing"
	"time"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"github.com/go-json-experiment/json/jsontext"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	sigsjson "sigs.k8s.io/json"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// The fast path (ServeHTTP: jsontext, only what policy reads) and the straightforward
// path (sigs.k8s.io/json into a corev1.Pod, then the same policy and lookups) must give
// the same decision, and their patches, applied as the API server applies them, the
// same pod.

type pathOutcome struct {
	allowed  bool
	code     int32
	warnings []string
	pod      map[string]any // the patched pod, or nil when denied
}

func differentialInjector(t testing.TB) *SandboxPodInjector {
	cfg := policy.DefaultConfig()
	return newTestInjector(t, cfg, &stubReader{
		namespaces: map[string]*corev1.Namespace{"team-a": tenantNamespace("team-a")},
		secrets: []corev1.Secret{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "anthropic", Labels: map[string]string{"sandbox-webhook.io/inference-provider": "anthropic"}},
			Data:       map[string][]byte{"api-key": []byte("k")},
		}},
	})
}

func reviewFor(t testing.TB, raw []byte) []byte {
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "diff", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "team-a", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func applyPatch(t testing.TB, raw, patch []byte) map[string]any {
	t.Helper()
	out := raw
	if len(patch) > 0 {
		p, err := jsonpatchapply.DecodePatch(patch)
		if err != nil {
			t.Fatalf("patch does not decode: %v\n%s", err, patch)
		}
		if out, err = p.Apply(raw); err != nil {
			t.Fatalf("patch does not apply: %v\n%s", err, patch)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// fastPath answers raw through ServeHTTP; ok is false when the review was refused as
// unreadable.
func fastPath(t testing.TB, h *SandboxPodInjector, raw []byte) (pathOutcome, bool) {
	rec := serveReview(h, reviewFor(t, raw), false)
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil || review.Response == nil {
		t.Fatalf("no review in the answer: %v %s", err, rec.Body)
	}
	r := review.Response
	if !r.Allowed && r.Result != nil && r.Result.Code == http.StatusBadRequest {
		return pathOutcome{}, false
	}
	out := pathOutcome{allowed: r.Allowed, warnings: r.Warnings}
	if r.Result != nil {
		out.code = r.Result.Code
	}
	if r.Allowed {
		out.pod = applyPatch(t, raw, r.Patch)
	}
	return out, true
}

// straightforwardPath decodes the whole pod and runs the same decision.
func straightforwardPath(t testing.TB, h *SandboxPodInjector, raw []byte) (pathOutcome, bool) {
	var pod corev1.Pod
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &pod); err != nil {
		return pathOutcome{}, false
	}
	resp := h.handlePod(context.Background(), "team-a", policy.NewInjectionPod(&pod), &corev1.Namespace{})
	out := pathOutcome{allowed: resp.Allowed, warnings: resp.Warnings}
	if resp.Result != nil {
		out.code = resp.Result.Code
	}
	if resp.Allowed {
		var patch []byte
		if len(resp.Patches) > 0 {
			var err error
			if patch, err = json.Marshal(resp.Patches); err != nil {
				t.Fatal(err)
			}
		}
		out.pod = applyPatch(t, raw, patch)
	}
	if out.code == 0 {
		out.code = http.StatusOK
	}
	return out, true
}

func checkSameOutcome(t *testing.T, h *SandboxPodInjector, raw []byte) {
	t.Helper()
	if !json.Valid(raw) {
		return // the API server sends only JSON
	}
	slow, slowOK := straightforwardPath(t, h, raw)
	fast, fastOK := fastPath(t, h, raw)
	switch {
	case !slowOK && !fastOK:
		return
	case slowOK && !fastOK:
		// Refused only for what the API server never sends.
		if jsontext.Value(raw).IsValid() {
			t.Fatalf("the fast path refused a pod that decodes:\n%s", raw)
		}
		return
	case !slowOK && fastOK:
		if fast.allowed && fast.pod != nil && !reflect.DeepEqual(fast.pod, applyPatch(t, raw, nil)) {
			t.Fatalf("the fast path patched a pod that does not decode:\n%s", raw)
		}
		return
	}
	if fast.allowed != slow.allowed || fast.code != slow.code || !reflect.DeepEqual(fast.warnings, slow.warnings) {
		t.Fatalf("decisions differ:\nfast %+v\nslow %+v\n%s", fast, slow, raw)
	}
	if !reflect.DeepEqual(fast.pod, slow.pod) {
		a, _ := json.Marshal(fast.pod)
		b, _ := json.Marshal(slow.pod)
		t.Fatalf("patched pods differ:\nfast %s\nslow %s", a, b)
	}
}

func TestFastPathDecidesAsTheDecodedPodOnGoldenPods(t *testing.T) {
	h := differentialInjector(t)
	pods := goldenInputPods(t)
	for _, p := range []*corev1.Pod{benchPod(8<<10, 0), benchPod(0, 50)} {
		raw, _ := json.Marshal(p)
		pods = append(pods, raw)
	}
	for _, raw := range pods {
		checkSameOutcome(t, h, raw)
	}
}

// randomPod builds a sandbox pod from r with the shapes that matter to the decision:
// managed and forbidden env, token volumes and mounts that agree or conflict, init
// containers, labels that select or exclude.
func randomPod(r *rand.Rand) *corev1.Pod {
	cfg := policy.DefaultConfig()
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	pod := openShellSandboxPod("team-a", "p")
	if r.IntN(5) == 0 {
		pod.Labels = map[string]string{"sandbox-webhook.io/inject": pick("true", "false", "")}
	}
	env := func() []corev1.EnvVar {
		var out []corev1.EnvVar
		for range r.IntN(6) {
			e := corev1.EnvVar{Name: pick("A", "CLAUDE_CODE_USE_VERTEX", "USE_VERTEX", cfg.Inference.Env, cfg.Token.PathEnv, cfg.Gateway.EndpointEnv, "é"), Value: pick("", "1", "x\ny")}
			if r.IntN(4) == 0 {
				e.ValueFrom = &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}
			}
			out = append(out, e)
		}
		return out
	}
	mounts := func() []corev1.VolumeMount {
		var out []corev1.VolumeMount
		for range r.IntN(3) {
			out = append(out, corev1.VolumeMount{Name: pick("work", cfg.Token.VolumeName), MountPath: pick("/work", cfg.Token.MountPath), ReadOnly: r.IntN(2) == 0})
		}
		return out
	}
	pod.Spec.Containers = nil
	for i := range 1 + r.IntN(3) {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "agent", Env: env(), VolumeMounts: mounts(),
			ImagePullPolicy: corev1.PullPolicy(pick("", "Always", "Never"))})
	}
	for i := range r.IntN(2) {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: fmt.Sprintf("i%d", i), Image: "init", Env: env(), VolumeMounts: mounts()})
	}
	switch r.IntN(4) {
	case 0:
		pod.Spec.Volumes = append(pod.Spec.Volumes, policy.TokenVolume(cfg))
	case 1:
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: cfg.Token.VolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	if r.IntN(2) == 0 {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	return pod
}

func TestFastPathDecidesAsTheDecodedPodOnRandomPods(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	h := differentialInjector(t)
	for range 1000 {
		raw, err := json.Marshal(randomPod(r))
		if err != nil {
			t.Fatal(err)
		}
		checkSameOutcome(t, h, raw)
	}
}

func FuzzFastPathDecidesAsTheDecodedPod(f *testing.F) {
	for _, raw := range goldenInputPods(f) {
		f.Add(raw)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		raw, _ := json.Marshal(randomPod(r))
		f.Add(raw)
	}
	h := differentialInjector(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkSameOutcome(t, h, raw)
	})
}
