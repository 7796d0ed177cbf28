package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDevDemoShowsInjectionDenialAndBindingThenStops(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	p := startDev(t, "--demo", "--kubeconfig-out", kubeconfig)
	// Every kube-apiserver and etcd it runs (envtest retries a failed start with new
	// processes) until it exits.
	seen := map[int]process{}
	for exited := false; !exited; {
		for _, c := range children(t, p.cmd.Process.Pid) {
			if c.comm == "kube-apiserver" || c.comm == "etcd" {
				seen[c.pid] = c
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			exited = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	if len(seen) < 2 {
		t.Errorf("saw %d kube-apiserver and etcd processes of dev --demo, want both", len(seen))
	}
	code := p.wait(t, 5*time.Minute)
	out := p.out.String()
	if code != 0 {
		t.Fatalf("dev --demo exited with status %d", code)
	}
	for _, proc := range seen {
		if proc.alive() {
			t.Errorf("%s (pid %d) still runs after dev --demo exited", proc.comm, proc.pid)
		}
	}
	var demo []string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "demo: "); ok {
			demo = append(demo, rest)
		}
	}

	t.Run("both sandbox pods are injected, side by side", func(t *testing.T) {
		table := demoTable(t, demo)
		for label, want := range map[string][2]string{
			"ACP_OPENSHELL_INFERENCE":         {"true", "false"},
			"OPENSHELL_GATEWAY_SA_TOKEN_PATH": {"/var/run/secrets/openshell/token", "/var/run/secrets/openshell/token"},
			"OPENSHELL_GATEWAY_ENDPOINT":      {"openshell-gateway.tenant-a.svc.cluster.local:8080", "openshell-gateway.tenant-b.svc.cluster.local:8080"},
			"token volume":                    {"openshell-sa-token", "openshell-sa-token"},
			"audience, expiry":                {"openshell-gateway, 3600s", "openshell-gateway, 3600s"},
		} {
			if got := table[label]; got != want {
				t.Errorf("row %q = %q, want %q", label, got, want)
			}
		}
		ann := table["sandbox-webhook.io/injected"]
		if !strings.HasPrefix(ann[0], "inference true") || !strings.HasPrefix(ann[1], "inference false") {
			t.Errorf("injected annotation row = %q", ann)
		}
	})

	t.Run("the pod with a key is refused without showing the key", func(t *testing.T) {
		denial := ""
		for i, line := range demo {
			if strings.TrimSpace(line) == "refused:" {
				for _, l := range demo[i+1:] {
					if !strings.HasPrefix(l, "    ") {
						break
					}
					denial += strings.TrimSpace(l) + " "
				}
			}
		}
		for _, want := range []string{"spec.containers[0].env[0].value", "TLS_KEY", "SHA256:"} {
			if !strings.Contains(denial, want) {
				t.Errorf("denial %q does not name %s", denial, want)
			}
		}
		if !regexp.MustCompile(`SHA256:[0-9a-f]{16}`).MatchString(denial) {
			t.Errorf("denial %q has no fingerprint", denial)
		}
		// The key was made inside the process; any long base64 run would be part of it.
		if strings.Contains(out, "PRIVATE KEY-----") || regexp.MustCompile(`[A-Za-z0-9+/]{40,}`).MatchString(strings.Join(demo, "\n")) {
			t.Errorf("the output looks like it holds key material")
		}
	})

	t.Run("the demo ends with doctor, which passes", func(t *testing.T) {
		var lines []string
		for i, line := range demo {
			if line == "sandbox-webhook doctor, against this cluster:" {
				lines = demo[i+1:]
				break
			}
		}
		if len(lines) == 0 {
			t.Fatalf("no doctor output in the demo:\n%s", strings.Join(demo, "\n"))
		}
		text := strings.Join(lines, "\n")
		for _, want := range []string{
			"PASS  MutatingWebhookConfiguration sandbox-webhook: 2 webhooks as shipped",
			"PASS  caBundle of ValidatingWebhookConfiguration sandbox-webhook: verifies the certificate served at 127.0.0.1:",
			"SKIP  Deployment: the webhooks are reached by URL https://127.0.0.1:",
			"PASS  TokenReview allowed: system:serviceaccount:tenant-a:openshell-gateway may create tokenreviews",
			"PASS  TokenReview allowed: system:serviceaccount:tenant-b:openshell-gateway may create tokenreviews",
			"PASS  inference credential: usable",
			"PASS  dry-run sandbox pod: injected in tenant-a",
			"PASS  dry-run pod with a private key",
			"OK: ",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("doctor output lacks %q:\n%s", want, text)
			}
		}
		if strings.Contains(text, "FAIL") {
			t.Errorf("doctor failed a check in the demo:\n%s", text)
		}
		if lines[len(lines)-1] != "done" {
			t.Errorf("the demo does not end with doctor and done: last line %q", lines[len(lines)-1])
		}
	})

	t.Run("the binding lists both tenants' gateways", func(t *testing.T) {
		subjects := map[string]bool{}
		in := false
		for _, line := range demo {
			if strings.HasPrefix(line, "subjects of ClusterRoleBinding openshell-gateway-node-reader") {
				in = true
				continue
			}
			if in && strings.HasPrefix(line, "  ") {
				subjects[strings.Join(strings.Fields(line), " ")] = true
			} else {
				in = false
			}
		}
		for _, want := range []string{"ServiceAccount tenant-a/openshell-gateway", "ServiceAccount tenant-b/openshell-gateway"} {
			if !subjects[want] {
				t.Errorf("subjects %v lack %s", subjects, want)
			}
		}
	})
}

// demoTable reads the side-by-side table of the demo's output: label -> the values of
// the tenant-a and tenant-b columns, cut at the header's column positions.
func demoTable(t *testing.T, demo []string) map[string][2]string {
	t.Helper()
	rows := map[string][2]string{}
	for i, header := range demo {
		a, b := strings.Index(header, "tenant-a/sandbox-a"), strings.Index(header, "tenant-b/sandbox-b")
		if a < 0 || b < a || strings.TrimSpace(header[:a]) != "" {
			continue
		}
		for _, line := range demo[i+1:] {
			if len(line) <= b || strings.TrimSpace(line[:2]) != "" {
				break
			}
			rows[strings.TrimSpace(line[:a])] = [2]string{strings.TrimSpace(line[a:b]), strings.TrimSpace(line[b:])}
		}
		return rows
	}
	t.Fatalf("no table with columns tenant-a/sandbox-a and tenant-b/sandbox-b in:\n%s", strings.Join(demo, "\n"))
	return nil
}
