package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

// devProcess is a running `sandbox-webhook dev`.
type devProcess struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func startDev(t *testing.T, args ...string) *devProcess {
	t.Helper()
	assets, err := envtestutil.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	p := &devProcess{out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, append([]string{"dev", "--assets", assets}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Dir = t.TempDir()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			// Interrupt rather than kill, so that dev still stops what it started.
			_ = p.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-p.done:
			case <-time.After(time.Minute):
				_ = p.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("dev output:\n%s", p.out.String())
		}
	})
	return p
}

// wait waits for dev to exit and returns its exit code.
func (p *devProcess) wait(t *testing.T, bound time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatalf("waiting for dev: %v", err)
	case <-time.After(bound):
		t.Fatalf("dev did not exit within %s", bound)
	}
	return -1
}

// process is a process as /proc shows it; start tells a pid's reuse apart.
type process struct {
	pid   int
	comm  string
	start string
}

// procStat reads a process's name, state, parent and start time from /proc/<pid>/stat.
func procStat(pid int) (comm, state string, ppid int, start string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", 0, "", false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", "", 0, "", false
	}
	// After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime ...
	fields := strings.Fields(s[end+1:])
	if len(fields) < 20 {
		return "", "", 0, "", false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return s[open+1 : end], fields[0], ppid, fields[19], true
}

// children are the processes whose parent is pid.
func children(t *testing.T, pid int) []process {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []process
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, _, ppid, start, ok := procStat(child); ok && ppid == pid {
			out = append(out, process{pid: child, comm: comm, start: start})
		}
	}
	return out
}

// controlPlaneChildren are the kube-apiserver and etcd processes dev started; it waits
// until both run.
func controlPlaneChildren(t *testing.T, pid int) []process {
	t.Helper()
	var found []process
	eventually(t, "dev runs kube-apiserver and etcd", func() (bool, string) {
		found = found[:0]
		names := map[string]bool{}
		for _, c := range children(t, pid) {
			if c.comm == "kube-apiserver" || c.comm == "etcd" {
				found = append(found, c)
				names[c.comm] = true
			}
		}
		return len(names) == 2, fmt.Sprintf("children %v", found)
	})
	return found
}

// alive reports whether p still runs: the same pid with the same start time, and not
// a zombie.
func (p process) alive() bool {
	_, state, _, start, ok := procStat(p.pid)
	return ok && start == p.start && state != "Z"
}

func TestDevServesUntilInterruptedAndLeavesNoProcessBehind(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	p := startDev(t, "--kubeconfig-out", kubeconfig, "--tenant", "tenant-dev")

	// dev writes the kubeconfig once the webhook is installed and in effect.
	eventually(t, "dev writes its kubeconfig", func() (bool, string) {
		select {
		case err := <-p.done:
			t.Fatalf("dev exited early: %v", err)
		default:
		}
		_, err := os.Stat(kubeconfig)
		return err == nil, fmt.Sprint(err)
	})
	// The processes that run now are the ones dev must stop (envtest replaces a control
	// plane that fails to start, so only the ready one counts).
	started := controlPlaneChildren(t, p.cmd.Process.Pid)
	started = append(started, devWatchdog(t, p.cmd.Process.Pid))
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(restCfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	noToken := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   "tenant-dev",
			Name:        "sb-dev",
			Labels:      map[string]string{"agents.x-k8s.io/sandbox-name-hash": "abc123"},
			Annotations: map[string]string{"openshell.io/sandbox-id": "sb-dev"},
		},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: &noToken,
			Containers:                   []corev1.Container{{Name: "agent", Image: "agent:dev"}},
		},
	}
	if err := c.Create(context.Background(), pod); err != nil {
		t.Fatalf("creating a sandbox pod through the dev API server: %v", err)
	}
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	for name, want := range map[string]string{
		"OPENSHELL_GATEWAY_SA_TOKEN_PATH": "/var/run/secrets/openshell/token",
		"OPENSHELL_GATEWAY_ENDPOINT":      "openshell-gateway.tenant-dev.svc.cluster.local:8080",
		"ACP_OPENSHELL_INFERENCE":         "false",
	} {
		if env[name] != want {
			t.Errorf("%s = %q, want %q (env %v)", name, env[name], want, env)
		}
	}
	if pod.Annotations["sandbox-webhook.io/injected"] == "" {
		t.Errorf("no sandbox-webhook.io/injected annotation: %v", pod.Annotations)
	}

	t.Run("doctor -o json passes against dev", func(t *testing.T) {
		code, stdout, stderr := runBinary(t, nil, "doctor", "--kubeconfig", kubeconfig, "--namespace", "tenant-dev", "-o", "json")
		if code != 0 {
			t.Fatalf("doctor: exit %d\n%s\n%s", code, stdout, stderr)
		}
		var report struct {
			OK      bool `json:"ok"`
			Summary struct{ Passed, Warned, Failed, Skipped int }
			Checks  []struct{ Section, Name, Status, Message, Fix string }
		}
		if err := json.Unmarshal([]byte(stdout), &report); err != nil {
			t.Fatalf("doctor -o json: %v\n%s", err, stdout)
		}
		if !report.OK || report.Summary.Failed != 0 || report.Summary.Passed < 10 {
			t.Errorf("doctor: ok %v, summary %+v", report.OK, report.Summary)
		}
		statuses := map[string]string{}
		for _, ch := range report.Checks {
			statuses[ch.Section+"/"+ch.Name] = ch.Status
			if ch.Section == "webhook serving" && (ch.Status != "skipped" || !strings.Contains(ch.Message, "reached by URL https://127.0.0.1:")) {
				t.Errorf("serving line %q: %s %q, want skipped because dev is reached by URL", ch.Name, ch.Status, ch.Message)
			}
		}
		for _, name := range []string{"tenant tenant-dev/binding", "tenant tenant-dev/TokenReview allowed", "end to end/dry-run sandbox pod", "end to end/dry-run pod with a private key", "webhook configurations/caBundle of MutatingWebhookConfiguration sandbox-webhook"} {
			if statuses[name] != "passed" {
				t.Errorf("%s: %q, want passed", name, statuses[name])
			}
		}
	})
	t.Run("doctor fails on a namespace that is no tenant", func(t *testing.T) {
		code, stdout, _ := runBinary(t, nil, "doctor", "--kubeconfig", kubeconfig, "--namespace", "default")
		if code != 1 || !strings.Contains(stdout, "fix: kubectl label namespace default sandbox-webhook.io/tenant=true") {
			t.Errorf("doctor --namespace default: exit %d, want 1 with the label fix:\n%s", code, stdout)
		}
	})

	for _, proc := range started {
		if !proc.alive() {
			t.Fatalf("%s (pid %d) is not running while dev serves", proc.comm, proc.pid)
		}
	}
	// A second Ctrl-C during shutdown must not cut the shutdown short.
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	eventually(t, "dev says it is stopping", func() (bool, string) {
		return strings.Contains(p.out.String(), "dev: interrupt: stopping"), "not yet"
	})
	_ = p.cmd.Process.Signal(syscall.SIGINT) // it may have exited already
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("dev exited with status %d", code)
	}
	for _, proc := range started {
		if proc.alive() {
			t.Errorf("%s (pid %d) still runs after dev exited", proc.comm, proc.pid)
		}
	}
	if !strings.Contains(p.out.String(), "dev: stopped") {
		t.Errorf("dev did not report that it stopped")
	}
	if strings.Contains(p.out.String(), "dev exited without stopping") {
		t.Errorf("the watchdog had to stop something after a clean exit")
	}
}

// cmdline is a process's command line, its arguments split.
func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// devWatchdog is the watchdog dev started: its child running `dev-watchdog`.
func devWatchdog(t *testing.T, pid int) process {
	t.Helper()
	for _, c := range children(t, pid) {
		if args := cmdline(c.pid); len(args) == 2 && args[1] == "dev-watchdog" {
			return c
		}
	}
	t.Fatalf("dev (pid %d) runs no watchdog; children %v", pid, children(t, pid))
	return process{}
}

// etcdDataDir is the --data-dir of the etcd process among procs.
func etcdDataDir(t *testing.T, procs []process) string {
	t.Helper()
	for _, p := range procs {
		if p.comm != "etcd" {
			continue
		}
		for _, arg := range cmdline(p.pid) {
			if dir, ok := strings.CutPrefix(arg, "--data-dir="); ok {
				return dir
			}
		}
	}
	t.Fatalf("no etcd --data-dir among %v", procs)
	return ""
}

func TestDevKilledOrCrashedLeavesNoProcessBehind(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
			p := startDev(t, "--kubeconfig-out", kubeconfig, "--tenant", "")
			eventually(t, "dev writes its kubeconfig", func() (bool, string) {
				select {
				case err := <-p.done:
					t.Fatalf("dev exited early: %v", err)
				default:
				}
				_, err := os.Stat(kubeconfig)
				return err == nil, fmt.Sprint(err)
			})
			started := controlPlaneChildren(t, p.cmd.Process.Pid)
			watchdog := devWatchdog(t, p.cmd.Process.Pid)
			dataDir := etcdDataDir(t, started)

			// SIGKILL runs nothing of dev; SIGQUIT ends a Go program with a stack dump
			// and no deferred call, as a crash does.
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 2*time.Minute); code == 0 {
				t.Fatalf("dev exited with status 0 after %s", sig)
			}
			for _, proc := range append(started, watchdog) {
				eventually(t, fmt.Sprintf("%s (pid %d) exits after dev got %s", proc.comm, proc.pid, sig), func() (bool, string) {
					return !proc.alive(), "still running"
				})
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("etcd's data folder %s outlives the session: %v", dataDir, err)
			}
			if out := p.out.String(); !strings.Contains(out, "dev exited without stopping") {
				t.Errorf("the watchdog did not say what it stopped")
			}
		})
	}
}
