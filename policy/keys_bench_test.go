package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// sandboxPod is a realistic sandbox pod of about size bytes of JSON; extra env vars are
// appended to the agent container.
func sandboxPod(size int, extraEnv ...map[string]any) []byte {
	env := []any{
		map[string]any{"name": "OPENSHELL_GATEWAY_ENDPOINT", "value": "openshell-gateway.team-a.svc.cluster.local:8080"},
		map[string]any{"name": "OPENSHELL_GATEWAY_SA_TOKEN_PATH", "value": "/var/run/secrets/openshell/token"},
		map[string]any{"name": "ACP_OPENSHELL_INFERENCE", "value": "true"},
		map[string]any{"name": "ANTHROPIC_API_KEY", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "inference", "key": "api-key"}}},
	}
	for _, e := range extraEnv {
		env = append(env, e)
	}
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"name": "sandbox-7f9c2", "namespace": "team-a", "uid": "0b7e3c1e-5d2f-4b8e-9a51-3f1c2d4e5a6b",
			"labels":          map[string]any{"agents.x-k8s.io/sandbox-name-hash": "a1b2c3d4", "app.kubernetes.io/name": "sandbox"},
			"annotations":     map[string]any{"openshell.io/sandbox-id": "sbx-0123456789"},
			"ownerReferences": []any{map[string]any{"apiVersion": "agents.x-k8s.io/v1alpha1", "kind": "Sandbox", "name": "sandbox-7f9c2", "uid": "5e6f7a8b-1c2d-3e4f-5a6b-7c8d9e0f1a2b", "controller": true}},
		},
		"spec": map[string]any{
			"serviceAccountName": "sandbox",
			"containers": []any{map[string]any{
				"name": "agent", "image": "registry.example/agents/agent@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
				"imagePullPolicy": "IfNotPresent", "args": []any{"--workspace", "/workspace", "--log-level", "info"},
				"env":          env,
				"resources":    map[string]any{"limits": map[string]any{"cpu": "2", "memory": "4Gi"}, "requests": map[string]any{"cpu": "500m", "memory": "1Gi"}},
				"volumeMounts": []any{map[string]any{"name": "workspace", "mountPath": "/workspace"}, map[string]any{"name": "openshell-sa-token", "mountPath": "/var/run/secrets/openshell", "readOnly": true}},
			}},
			"volumes": []any{
				map[string]any{"name": "workspace", "emptyDir": map[string]any{}},
				map[string]any{"name": "openshell-sa-token", "projected": map[string]any{"sources": []any{map[string]any{"serviceAccountToken": map[string]any{"audience": "openshell-gateway", "expirationSeconds": 3600, "path": "token"}}}}},
			},
		},
	}
	raw, _ := json.Marshal(pod)
	// Pad with ordinary settings up to the target size.
	for i := 0; len(raw) < size; i++ {
		env = append(env, map[string]any{"name": fmt.Sprintf("AGENT_SETTING_%03d", i), "value": fmt.Sprintf("value-%d for the agent's tool configuration", i)})
		pod["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["env"] = env
		raw, _ = json.Marshal(pod)
	}
	return raw
}

func benchmarkDetect(b *testing.B, raw []byte, cfg *Config, wantFindings int) {
	b.Helper()
	if f, err := DetectPrivateKeys(raw, "Pod", cfg); err != nil || len(f) != wantFindings {
		b.Fatalf("setup: %d findings, %v; want %d", len(f), err, wantFindings)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = DetectPrivateKeys(raw, "Pod", cfg)
	}
}

func BenchmarkKeyDetectCleanSandboxPod8KiB(b *testing.B) {
	benchmarkDetect(b, sandboxPod(8<<10), DefaultConfig(), 0)
}

func BenchmarkKeyDetectPodWith4KiBCertificateBundle(b *testing.B) {
	certs := publicMaterial(b)["certificate"]
	bundle := strings.Repeat(certs, (4<<10)/len(certs)+1)[:0]
	for len(bundle) < 4<<10 {
		bundle += certs
	}
	raw := sandboxPod(8<<10, map[string]any{"name": "SSL_CERT_BUNDLE", "value": bundle})
	benchmarkDetect(b, raw, DefaultConfig(), 0)
}

func BenchmarkKeyDetectPodWithRSAKey(b *testing.B) {
	k := keyFixtures(b)[0]
	raw := sandboxPod(8<<10, map[string]any{"name": "TLS_KEY", "value": k.text})
	benchmarkDetect(b, raw, DefaultConfig(), 1)
}

// fakeMarkerObject is a ConfigMap of about size bytes with markers fake BEGIN lines.
func fakeMarkerObject(size, markers int) []byte {
	chunk := size / markers
	var sb strings.Builder
	filler := strings.Repeat("lorem ipsum dolor sit amet, ", chunk/28+1)
	for i := 0; i < markers; i++ {
		sb.WriteString("-----BEGIN RSA PRIVATE KEY-----\n")
		sb.WriteString(filler[:chunk-32])
	}
	raw, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "big"}, "data": map[string]any{"blob": sb.String()}})
	return raw
}

func BenchmarkKeyDetect1MiBWith1000FakeMarkers(b *testing.B) {
	benchmarkDetect(b, fakeMarkerObject(1<<20, 1000), DefaultConfig(), 0)
}

func BenchmarkKeyDetect2MiBWith2000FakeMarkers(b *testing.B) {
	benchmarkDetect(b, fakeMarkerObject(2<<20, 2000), DefaultConfig(), 0)
}

// reportPerKiB reports the time per KiB of the object, the figure to compare between an
// attack and a clean object of the same size, and the work the scanner counted.
func reportPerKiB(b *testing.B, raw []byte) {
	b.Helper()
	cfg := DefaultConfig()
	_, work, _ := detectPrivateKeys(nil, raw, "ConfigMap", cfg)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = DetectPrivateKeys(raw, "ConfigMap", cfg)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(float64(len(raw))/1024), "ns/KiB")
	b.ReportMetric(float64(work)/float64(len(raw)), "work/byte")
}

// BenchmarkKeyDetectHostile1MiB runs each hostile family at about 1 MiB. Its ns/KiB is
// to be read against BenchmarkKeyDetectClean1MiB's.
func BenchmarkKeyDetectHostile1MiB(b *testing.B) {
	for i, fam := range hostileFamilies {
		raw := fam.build(rand.New(rand.NewPCG(hostileSeed, uint64(i))), 1<<20)
		b.Run(fam.name, func(b *testing.B) { reportPerKiB(b, raw) })
	}
}

// BenchmarkKeyDetectClean1MiB runs clean objects of about 1 MiB: one whose every pass has
// something to read, one that the filter in front passes without a walk, and a
// package-lock.json.
func BenchmarkKeyDetectClean1MiB(b *testing.B) {
	for name, raw := range map[string][]byte{
		"configmap":    benignConfigMap(b, 1<<20),
		"text":         configMapWith(loremTo(1 << 20)),
		"package-lock": packageLock(b, 1<<20),
	} {
		b.Run(name, func(b *testing.B) { reportPerKiB(b, raw) })
	}
}
