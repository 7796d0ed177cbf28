package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func runDoctorCommand(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"doctor"}, args...), strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestDoctorHelpListsTheFlags(t *testing.T) {
	_, stderr, code := runDoctorCommand(t, "-h")
	if code != 0 {
		t.Fatalf("doctor -h: exit %d", code)
	}
	for _, want := range []string{"-kubeconfig", "-namespace", "-config", "-o", "-webhook-address", "-timeout"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("doctor -h does not list %s:\n%s", want, stderr)
		}
	}
}

func TestDoctorUsageErrorsExitTwo(t *testing.T) {
	cases := map[string][]string{
		"unknown output":      {"-o", "yaml"},
		"missing kubeconfig":  {"--kubeconfig", filepath.Join(t.TempDir(), "none")},
		"invalid config file": {"--config", writeFile(t, t.TempDir(), "c.yaml", "apiVersion: x\n")},
		"stray argument":      {"extra"},
		"zero timeout":        {"--timeout", "0s"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if _, stderr, code := runDoctorCommand(t, args...); code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, stderr)
			}
		})
	}
}

// unreachableKubeconfig points at a loopback port where nothing listens.
func unreachableKubeconfig(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	kc := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:` + strconv.Itoa(port) + `", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: not-a-real-token}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDoctorAgainstAnUnreachableAPIServerExitsOne(t *testing.T) {
	kc := unreachableKubeconfig(t)
	stdout, stderr, code := runDoctorCommand(t, "--kubeconfig", kc, "--timeout", "5s")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"sandbox-webhook doctor: API server https://127.0.0.1:", "FAIL  API server: cannot read", "fix: check --kubeconfig", "FAILED: 0 passed, 0 warned, 1 failed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output does not contain %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout+stderr, "not-a-real-token") {
		t.Error("doctor printed the kubeconfig's token")
	}

	stdout, _, code = runDoctorCommand(t, "--kubeconfig", kc, "--timeout", "5s", "-o", "json")
	if code != 1 {
		t.Fatalf("-o json: exit %d, want 1", code)
	}
	var doc struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Section, Name, Status, Message, Fix string
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("-o json is not one JSON document: %v\n%s", err, stdout)
	}
	if doc.OK || len(doc.Checks) != 1 || doc.Checks[0].Status != "failed" || doc.Checks[0].Fix == "" {
		t.Errorf("-o json: %+v", doc)
	}
}

func TestLinePrefixWriterPrefixesEveryLine(t *testing.T) {
	var b bytes.Buffer
	w := &linePrefixWriter{prefix: "> ", w: &b}
	for _, s := range []string{"a\nb", "c\n", "\nd\n"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if want := "> a\n> bc\n> \n> d\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
