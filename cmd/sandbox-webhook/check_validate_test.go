package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKey returns a freshly generated key as PEM, its base64 body and fingerprint.
func testKey(t *testing.T) (pemText, body, fingerprint string) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	text := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	lines := strings.Split(text, "\n")
	sum := sha256.Sum256(der)
	return text, lines[1], "SHA256:" + hex.EncodeToString(sum[:8])
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckValidatesPrivateKeys(t *testing.T) {
	keyPEM, body, fp := testKey(t)
	dir := t.TempDir()
	podWithKey := `apiVersion: v1
kind: Pod
metadata:
  name: leaky
  namespace: team-a
spec:
  containers:
  - name: agent
    image: agent:1
    env:
    - name: TLS_KEY
      value: |
` + indent(keyPEM, "        ") + "\n"
	cleanPod := `apiVersion: v1
kind: Pod
metadata:
  name: clean
spec:
  containers:
  - name: agent
    image: agent:1
    env:
    - name: TLS_KEY
      valueFrom:
        secretKeyRef: {name: agent-tls, key: tls.key}
`
	secret := `apiVersion: v1
kind: Secret
metadata:
  name: agent-tls
stringData:
  tls.key: |
` + indent(keyPEM, "    ") + "\n"
	leaky := writeFile(t, dir, "leaky.yaml", cleanPod+"---\n"+podWithKey)
	clean := writeFile(t, dir, "clean.yaml", cleanPod+"---\n"+secret)
	broken := writeFile(t, dir, "broken.yaml", "kind: [\n")
	// A service-account key file and Helm values are no Kubernetes objects: check must
	// refuse them without quoting them, key and all.
	saKey, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com", "private_key": keyPEM})
	saJSON := writeFile(t, dir, "sa.json", string(saKey))
	numericKind := writeFile(t, dir, "values.yaml", "kind: 5\napiVersion: v1\ntls:\n  key: |\n"+indent(keyPEM, "    ")+"\n")
	otherSecret := writeFile(t, dir, "other-secret.yaml", `apiVersion: example.com/v1
kind: Secret
metadata:
  name: not-a-core-secret
spec:
  key: |
`+indent(keyPEM, "    ")+"\n")

	podTemplate := writeFile(t, dir, "podtemplate.yaml", `apiVersion: v1
kind: PodTemplate
metadata:
  name: tpl
template:
  spec:
    containers:
    - name: agent
      image: agent:1
      env:
      - name: TLS_KEY
        value: |
`+indent(keyPEM, "          ")+"\n")
	rc := writeFile(t, dir, "rc.yaml", `apiVersion: v1
kind: ReplicationController
metadata:
  name: rc
spec:
  template:
    spec:
      containers:
      - name: agent
        image: agent:1
        env:
        - name: TLS_KEY
          value: |
`+indent(keyPEM, "            ")+"\n")

	cases := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantOut  []string
		wantErr  []string
	}{
		{name: "rejected-file", args: []string{"-f", leaky}, wantCode: 1,
			wantOut: []string{leaky + ":2: Pod/leaky: spec.containers[0].env[0].value: Ed25519 private key (PKCS#8), " + fp + "\n"}},
		{name: "allowed-file-with-secret", args: []string{"-f", clean}, wantCode: 0},
		{name: "folder", args: []string{"-f", dir + "/sub"}, wantCode: 1, wantOut: []string{"Pod/leaky"}},
		{name: "stdin", args: []string{"-f", "-"}, stdin: podWithKey, wantCode: 1, wantOut: []string{"-:1: Pod/leaky: spec.containers[0].env[0].value"}},
		{name: "repeated-f", args: []string{"-f", clean, "-f", leaky}, wantCode: 1, wantOut: []string{"leaky.yaml:2"}},
		{name: "json-output", args: []string{"-o", "json", "-f", leaky}, wantCode: 1, wantOut: []string{`"rejected": true`, `"fingerprint": "` + fp + `"`, `"container": "agent"`, `"env": "TLS_KEY"`}},
		{name: "unreadable", args: []string{"-f", filepath.Join(dir, "missing.yaml")}, wantCode: 2},
		{name: "unparseable", args: []string{"-f", broken}, wantCode: 2},
		{name: "key-file-without-kind", args: []string{"-f", saJSON}, wantCode: 2, wantErr: []string{saJSON + ":1: not a Kubernetes object: it has no kind"}},
		{name: "kind-not-a-string", args: []string{"-f", numericKind}, wantCode: 2, wantErr: []string{numericKind + ":1: not a Kubernetes object: kind is not a non-empty string"}},
		// The webhook's rules name no example.com kind, so the API server never sends it
		// one; check says so instead of passing it silently or rejecting what the
		// cluster would admit.
		{name: "secret-of-another-group", args: []string{"-f", otherSecret}, wantCode: 0, wantErr: []string{otherSecret + ":1: Secret/not-a-core-secret: skipped: the webhook does not validate Secret.example.com objects"}},
		{name: "pod-template", args: []string{"-f", podTemplate}, wantCode: 1, wantOut: []string{"PodTemplate/tpl: template.spec.containers[0].env[0].value: Ed25519 private key (PKCS#8), " + fp}},
		{name: "replication-controller", args: []string{"-f", rc}, wantCode: 1, wantOut: []string{"ReplicationController/rc: spec.template.spec.containers[0].env[0].value: Ed25519 private key (PKCS#8), " + fp}},
	}
	if err := os.MkdirAll(dir+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir+"/sub", "pod.yml", podWithKey)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"check"}, tc.args...), strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tc.wantCode, stdout.String(), stderr.String())
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout %q lacks %q", stdout.String(), want)
				}
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q lacks %q", stderr.String(), want)
				}
			}
			if tc.wantCode == 0 && stdout.Len() != 0 {
				t.Errorf("allowed input printed %q", stdout.String())
			}
			for i := 0; i+8 <= len(body); i++ {
				if strings.Contains(stdout.String()+stderr.String(), body[i:i+8]) {
					t.Fatal("output holds key material")
				}
			}
		})
	}
}

func TestCheckJSONReportIsMachineReadable(t *testing.T) {
	keyPEM, _, fp := testKey(t)
	dir := t.TempDir()
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  id_ed25519: |\n" + indent(keyPEM, "    ") + "\n"
	p := writeFile(t, dir, "cm.yaml", cm)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-o", "json", "-f", p}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, stderr %s", code, stderr.String())
	}
	var report keyReport
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	if !report.Rejected || len(report.Findings) != 1 || report.Findings[0].Field != "data.id_ed25519" || report.Findings[0].Fingerprint != fp || report.Findings[0].Source != p+":1" {
		t.Fatalf("report %+v", report)
	}
}
