package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

func TestServeFlagsOverrideTheConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	config := "apiVersion: sandbox-webhook.io/v1alpha1\nkind: Config\nserver:\n  port: 9555\n  certDir: /from/file\n  leaderElectionID: from-file\n"
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cfg, _, err := newServeFlags(&stderr).parse([]string{
		"--config", path, "--port=10443", "--metrics-bind-address=127.0.0.1:9090", "--health-probe-bind-address=0",
		"--leader-elect=false", "--leader-election-namespace=ops", "--shutdown-delay=0s", "--log-format=json",
	})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	if s.Port != 10443 || s.MetricsBindAddress != "127.0.0.1:9090" || s.HealthProbeBindAddress != "0" || s.LeaderElectionNamespace != "ops" {
		t.Errorf("flags not applied: %+v", s)
	}
	if cfg.LeaderElectionEnabled() {
		t.Error("--leader-elect=false left leader election on")
	}
	if s.ShutdownDelay == nil || s.ShutdownDelay.Duration != 0 {
		t.Errorf("--shutdown-delay=0s gave %v", s.ShutdownDelay)
	}
	// Fields without a flag on the command line keep the file's values.
	if s.CertDir != "/from/file" || s.LeaderElectionID != "from-file" {
		t.Errorf("unset flags changed the file's values: certDir %q, leaderElectionID %q", s.CertDir, s.LeaderElectionID)
	}

	cfg, _, err = newServeFlags(&stderr).parse([]string{"--config", path})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Port != 9555 || cfg.Server.ShutdownDelay.Duration != 5*time.Second || !cfg.LeaderElectionEnabled() {
		t.Errorf("without flags the file and defaults apply: port %d, shutdownDelay %v", cfg.Server.Port, cfg.Server.ShutdownDelay)
	}
}

func TestServeFlagsAreValidatedLikeTheConfig(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--port=70000"}, "server.port"},
		{[]string{"--shutdown-delay=-1s"}, "server.shutdownDelay"},
		{[]string{"--leader-election-namespace=Not_A_Namespace"}, "server.leaderElectionNamespace"},
		{[]string{"--cert-dir= "}, "server.certDir"},
		{[]string{"--memory-limit=lots"}, "-memory-limit"},
		{[]string{"--memory-limit=1Mi"}, "server.memoryLimit"},
		{[]string{"--memory-limit-ratio=1.5"}, "server.memoryLimitRatio"},
		{[]string{"--log-format=xml"}, "--log-format"},
		{[]string{"--log-level=loud"}, "--log-level"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var stderr bytes.Buffer
		_, _, err := newServeFlags(&stderr).parse(c.args)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want exit code 2 naming %s", c.args, err, c.want)
		}
	}
}

func TestPrintConfigShowsTheFlagsApplied(t *testing.T) {
	var stderr bytes.Buffer
	if _, _, err := newServeFlags(&stderr).parse([]string{"--print-config", "--port=10443", "--shutdown-delay=2s"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"port: 10443", "shutdownDelay: 2s", "gracefulShutdownTimeout: 30s"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("--print-config output lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestLogFormats(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("info", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", "n", 1)
	log.V(1).Info("hidden at info")
	if !strings.HasPrefix(buf.String(), "{") || !strings.Contains(buf.String(), `"msg":"hello"`) || strings.Contains(buf.String(), "hidden") {
		t.Errorf("json at info: %q", buf.String())
	}
	buf.Reset()
	log, err = newLogger("2", "text", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.V(2).Info("shown at 2")
	if strings.HasPrefix(buf.String(), "{") || !strings.Contains(buf.String(), "shown at 2") {
		t.Errorf("text at verbosity 2: %q", buf.String())
	}
	buf.Reset()
	// auto: a buffer is not a terminal, so JSON.
	log, _ = newLogger("info", "auto", &buf)
	log.Info("x")
	if !strings.HasPrefix(buf.String(), "{") {
		t.Errorf("auto off a terminal: %q", buf.String())
	}
}

func TestHelpExitsZeroAndListsTheFlags(t *testing.T) {
	for _, cmd := range []string{"serve", "dev", "check", "doctor"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{cmd, "-h"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Errorf("%s -h: exit %d: %s", cmd, code, stderr.String())
		}
		if strings.Contains(stderr.String(), "help requested") {
			t.Errorf("%s -h reports an error: %s", cmd, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	run([]string{"serve", "-h"}, strings.NewReader(""), &stdout, &stderr)
	for _, want := range []string{"-shutdown-delay", "-cert-dir", "-leader-election-namespace", "-log-format"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve -h does not list %s", want)
		}
	}
}

func TestRestConfigReadsTheNamedKubeconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := restConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://127.0.0.1:6443" {
		t.Errorf("host %q from the named kubeconfig", cfg.Host)
	}
	if _, err := restConfig(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing kubeconfig gave no error")
	}
}

func TestMemoryLimitFlagsOverrideTheConfig(t *testing.T) {
	var stderr bytes.Buffer
	cfg, _, err := newServeFlags(&stderr).parse([]string{"--print-config", "--memory-limit=268435456", "--memory-limit-ratio=0.5"})
	if err != nil {
		t.Fatal(err)
	}
	if q := cfg.Server.MemoryLimit; q == nil || q.Value() != 256<<20 || cfg.Server.MemoryLimitRatio != 0.5 {
		t.Errorf("memoryLimit %v ratio %v, want 268435456 and 0.5", q, cfg.Server.MemoryLimitRatio)
	}
	for _, want := range []string{"memoryLimit: \"268435456\"", "memoryLimitRatio: 0.5"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("--print-config output lacks %q:\n%s", want, stderr.String())
		}
	}
	cfg, _, err = newServeFlags(&stderr).parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.MemoryLimit != nil || cfg.Server.MemoryLimitRatio != 0.9 {
		t.Errorf("without flags: memoryLimit %v ratio %v, want none and 0.9", cfg.Server.MemoryLimit, cfg.Server.MemoryLimitRatio)
	}
}

func TestGoMemoryLimitIsAShareOfTheContainerLimitUnlessGOMEMLIMITIsSet(t *testing.T) {
	limit := resource.MustParse("256Mi")
	for _, c := range []struct {
		name       string
		server     policy.ServerConfig
		gomemlimit string
		want       int64
	}{
		{"default share", policy.ServerConfig{MemoryLimit: &limit, MemoryLimitRatio: 0.9}, "", 241591910},
		{"whole limit", policy.ServerConfig{MemoryLimit: &limit, MemoryLimitRatio: 1}, "", 256 << 20},
		{"GOMEMLIMIT stands", policy.ServerConfig{MemoryLimit: &limit, MemoryLimitRatio: 0.9}, "100MiB", 0},
		{"no container limit", policy.ServerConfig{MemoryLimitRatio: 0.9}, "", 0},
	} {
		if got := goMemoryLimit(c.server, c.gomemlimit); got != c.want {
			t.Errorf("%s: %d bytes, want %d", c.name, got, c.want)
		}
	}
}

func TestSetGoMemoryLimitSetsTheRuntimeLimitAndSaysWhichApplies(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	limit := resource.MustParse("512Mi")
	server := policy.ServerConfig{MemoryLimit: &limit, MemoryLimitRatio: 0.5}

	var out bytes.Buffer
	log, err := newLogger("info", "json", &out)
	if err != nil {
		t.Fatal(err)
	}
	setGoMemoryLimit(server, "", log)
	if got := debug.SetMemoryLimit(-1); got != 256<<20 {
		t.Errorf("runtime memory limit %d, want %d", got, 256<<20)
	}
	if !strings.Contains(out.String(), "from server.memoryLimit") || !strings.Contains(out.String(), `"bytes":268435456`) {
		t.Errorf("log does not say the limit and where it comes from: %s", out.String())
	}

	// With GOMEMLIMIT set the runtime's own limit stands: serve changes nothing.
	debug.SetMemoryLimit(100 << 20)
	out.Reset()
	setGoMemoryLimit(server, "100MiB", log)
	if got := debug.SetMemoryLimit(-1); got != 100<<20 {
		t.Errorf("runtime memory limit %d with GOMEMLIMIT set, want %d", got, 100<<20)
	}
	if !strings.Contains(out.String(), "from GOMEMLIMIT") || !strings.Contains(out.String(), `"bytes":104857600`) {
		t.Errorf("log does not say GOMEMLIMIT applies: %s", out.String())
	}
}
