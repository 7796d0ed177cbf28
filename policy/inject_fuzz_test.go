package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// FuzzInjectIdempotent: for any pod, the patch applies cleanly to the pod's JSON, and
// injecting the patched pod again changes nothing.
func FuzzInjectIdempotent(f *testing.F) {
	for _, dir := range goldenDirs(f) {
		gc := loadGoldenCase(f, dir)
		f.Add(gc.podRaw, false, false)
		f.Add(gc.podRaw, true, true)
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "inject", "already-injected", "pod.golden.yaml")); err == nil {
		f.Add(b, false, true) // YAML: not a pod, must be harmless
	}
	f.Fuzz(func(t *testing.T, raw []byte, usable, pullPolicy bool) {
		var pod corev1.Pod
		if err := json.Unmarshal(raw, &pod); err != nil {
			return
		}
		// Always select the pod: an unselected pod is trivially untouched.
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels["sandbox-webhook.io/inject"] = "true"
		if pod.Namespace == "" || pod.Namespace == "kube-system" || len(pod.Namespace) > 63 {
			pod.Namespace = "team-a"
		}
		// The JSON the API server would send: the typed pod, serialized.
		canonical, err := json.Marshal(&pod)
		if err != nil {
			return
		}
		cfg := DefaultConfig()
		if pullPolicy {
			cfg.ImagePullPolicy = corev1.PullIfNotPresent
		}
		var state OfflineState
		if usable {
			state.AddSecret(&corev1.Secret{ObjectMeta: objectMeta(pod.Namespace, "key", map[string]string{cfg.Inference.ProviderLabel: "openai"}), Data: map[string][]byte{"k": []byte("v")}})
		}
		first, out := injectRaw(t, canonical, &state, cfg)
		if first.Outcome == OutcomeDenied {
			return
		}
		var again corev1.Pod
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("patched pod does not decode: %v", err)
		}
		canonical2, _ := json.Marshal(&again)
		second, _ := injectRaw(t, canonical2, &state, cfg)
		if len(second.Patch) != 0 || second.Outcome != OutcomeUnchanged {
			p, _ := json.Marshal(second.Patch)
			t.Fatalf("second pass: outcome %s, patch %s", second.Outcome, p)
		}
	})
}
