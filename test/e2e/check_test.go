package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const cleanPod = `apiVersion: v1
kind: Pod
metadata:
  name: clean
  namespace: default
spec:
  containers:
    - name: app
      image: app:dev
      env:
        - name: TLS_KEY
          valueFrom:
            secretKeyRef: {name: app-tls, key: tls.key}
`

func ecKeyPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckBinaryExitCodes(t *testing.T) {
	dir := t.TempDir()
	clean := write(t, dir, "clean.yaml", cleanPod)
	indented := "      " + strings.ReplaceAll(strings.TrimSpace(ecKeyPEM(t)), "\n", "\n      ")
	leaky := write(t, dir, "tree/leaky.yaml", cleanPod+"---\n"+`apiVersion: v1
kind: ConfigMap
metadata:
  name: leaky
  namespace: default
data:
  key.pem: |
`+indented+"\n")

	t.Run("clean input exits 0", func(t *testing.T) {
		code, out, errOut := runBinary(t, nil, "check", "-f", clean)
		if code != 0 {
			t.Fatalf("exit %d; stdout %q stderr %q", code, out, errOut)
		}
	})
	t.Run("a key in a folder's second document exits 1 naming file, doc, object and field", func(t *testing.T) {
		code, out, _ := runBinary(t, nil, "check", "-f", clean, "-f", filepath.Join(dir, "tree"))
		if code != 1 {
			t.Fatalf("exit %d, want 1; stdout %q", code, out)
		}
		for _, want := range []string{leaky + ":2:", "ConfigMap/", "leaky", "data[key.pem]", "EC", "SHA256:"} {
			if !strings.Contains(out, want) {
				t.Errorf("output %q lacks %q", out, want)
			}
		}
		if strings.Contains(out, "BEGIN") {
			t.Error("output echoes the key")
		}
	})
	t.Run("stdin is read with -f -", func(t *testing.T) {
		data, _ := os.ReadFile(leaky)
		code, _, _ := runBinary(t, data, "check", "-f", "-")
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
	})
	t.Run("-o json is machine-readable", func(t *testing.T) {
		code, out, _ := runBinary(t, nil, "check", "-o", "json", "-f", leaky)
		if code != 1 || !strings.HasPrefix(strings.TrimSpace(out), "{") && !strings.HasPrefix(strings.TrimSpace(out), "[") {
			t.Fatalf("exit %d, output %q", code, out)
		}
	})
	t.Run("a missing file exits 2 with the reason", func(t *testing.T) {
		code, _, errOut := runBinary(t, nil, "check", "-f", filepath.Join(dir, "nope.yaml"))
		if code != 2 || !strings.Contains(errOut, "nope.yaml") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("unparsable input exits 2 with the reason", func(t *testing.T) {
		bad := write(t, dir, "bad.yaml", "kind: [unclosed\n")
		code, _, errOut := runBinary(t, nil, "check", "-f", bad)
		if code != 2 || !strings.Contains(errOut, "bad.yaml:1") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("--mutate prints the injected sandbox pod", func(t *testing.T) {
		pod := write(t, dir, "mutate/pod.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: sb
  namespace: tenant-x
  labels: {agents.x-k8s.io/sandbox-name-hash: abc}
spec:
  containers: [{name: agent, image: agent:dev}]
`)
		code, out, errOut := runBinary(t, nil, "check", "--mutate", "-f", pod)
		if code != 0 {
			t.Fatalf("exit %d; stderr %q", code, errOut)
		}
		for _, want := range []string{"openshell-sa-token", "OPENSHELL_GATEWAY_ENDPOINT", "openshell-gateway.tenant-x.svc.cluster.local:8080", "ACP_OPENSHELL_INFERENCE"} {
			if !strings.Contains(out, want) {
				t.Errorf("mutated output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("--print-config prints the defaults and a bad config exits 2 naming the field", func(t *testing.T) {
		code, out, _ := runBinary(t, nil, "--print-config")
		if code != 0 || !strings.Contains(out, "expirationSeconds: 3600") {
			t.Fatalf("exit %d, output %q", code, out)
		}
		bad := write(t, dir, "config.yaml", "apiVersion: sandbox-webhook.io/v1alpha1\nkind: Config\ntoken:\n  expirationSeconds: 30\n")
		code, _, errOut := runBinary(t, nil, "--print-config", "--config", bad)
		if code != 2 || !strings.Contains(errOut, "token.expirationSeconds") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
}
