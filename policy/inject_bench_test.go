package policy

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func benchSandboxPod(env int) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sandbox", Namespace: "team-a", Labels: map[string]string{"agents.x-k8s.io/sandbox-name-hash": "x"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "sandbox", Containers: []corev1.Container{{Name: "agent", Image: "example.invalid/agent"}}},
	}
	for i := range env {
		pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%04d", i), Value: "v"})
	}
	pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: "USE_VERTEX", Value: "1"})
	return pod
}

// benchmarkInject measures the decision alone (no JSON decoding or encoding).
func benchmarkInject(b *testing.B, env int) {
	cfg := DefaultConfig()
	in := InjectionInput{Pod: NewInjectionPod(benchSandboxPod(env)), Namespace: "team-a", Credential: InferenceCredential{State: CredentialUsable}}
	for b.Loop() {
		if d := Inject(in, cfg); len(d.Patch) == 0 {
			b.Fatal("empty patch")
		}
	}
}

func BenchmarkInject10Env(b *testing.B)   { benchmarkInject(b, 10) }
func BenchmarkInject2000Env(b *testing.B) { benchmarkInject(b, 2000) }
func BenchmarkInject4000Env(b *testing.B) { benchmarkInject(b, 4000) }
