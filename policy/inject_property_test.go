package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// randomPod builds a pod from the pieces injection cares about: env keys that are
// managed, forbidden, duplicated or unrelated, env from fieldRefs, volumes and mounts
// near the webhook's names, init containers, pull policies and earlier annotations.
func randomPod(r *rand.Rand, cfg *Config) *corev1.Pod {
	envNames := append([]string{"HOME", "PATH", "A", cfg.Token.PathEnv, cfg.Gateway.EndpointEnv, cfg.Inference.Env}, cfg.Gateway.ForbiddenEnv...)
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	container := func(i int) corev1.Container {
		c := corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "example.invalid/x"}
		if r.IntN(3) > 0 {
			c.ImagePullPolicy = corev1.PullPolicy(pick([]string{"Always", "IfNotPresent", "Never"}))
		}
		for range r.IntN(8) {
			e := corev1.EnvVar{Name: pick(envNames), Value: pick([]string{"", "true", "false", "x", cfg.GatewayEndpoint("team-a")})}
			if r.IntN(6) == 0 {
				e.Value = ""
				e.ValueFrom = &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}
			}
			c.Env = append(c.Env, e)
		}
		if r.IntN(2) == 0 {
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "work", MountPath: "/work"})
		}
		if r.IntN(8) == 0 {
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: cfg.Token.VolumeName, MountPath: cfg.Token.MountPath, ReadOnly: r.IntN(2) == 0})
		}
		return c
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "team-a", Labels: map[string]string{cfg.Sandboxes.InjectLabel: "true"}}}
	if r.IntN(4) == 0 {
		pod.Annotations = map[string]string{AnnotationInjected: pick([]string{"", "{}", "garbage", `{"removedEnv":["OLD"]}`}), "other": "x"}
	}
	if r.IntN(2) == 0 {
		pod.Spec.ServiceAccountName = "sa"
	}
	for i := range r.IntN(3) {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, container(100+i))
	}
	for i := range 1 + r.IntN(3) {
		pod.Spec.Containers = append(pod.Spec.Containers, container(i))
	}
	if r.IntN(2) == 0 {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	if r.IntN(8) == 0 {
		v := TokenVolume(cfg)
		if r.IntN(2) == 0 {
			v.Projected.Sources[0].ServiceAccountToken.Audience = "other"
		}
		pod.Spec.Volumes = append(pod.Spec.Volumes, v)
	}
	return pod
}

// TestInjectPropertyIdempotentAndApplies: for many random pods and configs, the patch
// applies cleanly to the pod's JSON and a second pass over the result changes nothing.
func TestInjectPropertyIdempotentAndApplies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	denied := 0
	for i := range 3000 {
		cfg := DefaultConfig()
		if r.IntN(2) == 0 {
			cfg.ImagePullPolicy = corev1.PullIfNotPresent
		}
		if r.IntN(4) == 0 {
			cfg.Sandboxes.Containers = []string{"c0", "c100"}
		}
		pod := randomPod(r, cfg)
		raw, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		var state OfflineState
		if r.IntN(2) == 0 {
			state.AddSecret(&corev1.Secret{ObjectMeta: objectMeta("team-a", "k", map[string]string{cfg.Inference.ProviderLabel: "openai"}), Data: map[string][]byte{"k": []byte("v")}})
		}
		first, out := injectRaw(t, raw, &state, cfg)
		if first.Outcome == OutcomeDenied {
			denied++
			continue
		}
		second, _ := injectRaw(t, out, &state, cfg)
		if len(second.Patch) != 0 || second.Outcome != OutcomeUnchanged {
			p, _ := json.Marshal(second.Patch)
			t.Fatalf("case %d: second pass outcome %s, patch %s\ninput %s", i, second.Outcome, p, raw)
		}
	}
	if denied == 0 || denied > 2000 {
		t.Fatalf("%d of 3000 random pods denied: the generator does not cover both paths", denied)
	}
}
