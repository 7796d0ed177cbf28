package envtestutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
)

// Serve is a `sandbox-webhook serve` process against a control plane, reached over
// HTTPS on loopback with its own CA.
type Serve struct {
	Cmd    *exec.Cmd
	Out    *SyncBuffer
	Port   int
	Health int
	// Metrics is the metrics port (/metrics).
	Metrics int
	// TLS trusts the serving certificate; Client uses it over HTTP/2, as the API
	// server calls webhooks.
	TLS    *tls.Config
	Client *http.Client
	// CAPEM is the CA that signed the serving certificate, for webhook configurations.
	CAPEM  []byte
	exited atomic.Bool
	dir    string
}

// StartServe runs binary as serve with a config file of the defaults, leader election
// off and no shutdown delay, plus serverConfig (more fields of the config's "server",
// as YAML lines indented by two spaces) and extraArgs, and waits until /readyz passes.
func StartServe(c *ControlPlane, binary, serverConfig string, extraArgs ...string) (*Serve, error) {
	dir, err := os.MkdirTemp("", "sandbox-webhook-serve-")
	if err != nil {
		return nil, err
	}
	bundle, err := certs.SelfSigned([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	if err := bundle.WriteServing(certDir, "tls.crt", "tls.key"); err != nil {
		return nil, err
	}
	kubeconfig, err := c.KubeConfig()
	if err != nil {
		return nil, err
	}
	config := "apiVersion: sandbox-webhook.io/v1alpha1\nkind: Config\nserver:\n  leaderElection: false\n  shutdownDelay: 0s\n" + serverConfig
	configPath, kubeconfigPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "kubeconfig")
	for path, data := range map[string][]byte{configPath: []byte(config), kubeconfigPath: kubeconfig} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	// Three distinct free ports: held together while picked, freed before serve binds.
	var ports [3]int
	var held []net.Listener
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range held {
		l.Close()
	}
	s := &Serve{Out: &SyncBuffer{}, Port: ports[0], Health: ports[1], Metrics: ports[2], CAPEM: bundle.CAPEM, dir: dir}
	args := append([]string{"serve", "--config", configPath, "--kubeconfig", kubeconfigPath,
		fmt.Sprintf("--port=%d", s.Port), "--cert-dir", certDir,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", s.Metrics),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", s.Health)}, extraArgs...)
	s.Cmd = exec.Command(binary, args...)
	s.Cmd.Stdout, s.Cmd.Stderr = s.Out, s.Out
	// Killed with the test binary, should it die first.
	s.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.Cmd.Wait(); s.exited.Store(true) }()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle.CAPEM)
	s.TLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	s.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: s.TLS.Clone(), ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	probe := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := probe.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", s.Health))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if s.exited.Load() || time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("serve did not become ready:\n%s", s.Out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URL is the address of path on the webhook port.
func (s *Serve) URL(path string) string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", s.Port, path)
}

// Exited reports whether the process has ended.
func (s *Serve) Exited() bool { return s.exited.Load() }

// Stop kills the process, waits for it and removes its files.
func (s *Serve) Stop() {
	if !s.exited.Load() {
		_ = s.Cmd.Process.Kill()
		for !s.exited.Load() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	os.RemoveAll(s.dir)
}

// ProcStatus reads a field of /proc/<pid>/status given in kB (VmRSS, VmHWM), in bytes;
// -1 when it cannot be read.
func ProcStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// ProcCPU is the user and system time a process has spent, from /proc/<pid>/stat.
func ProcCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses: utime and stime are
	// the 12th and 13th of them, in clock ticks of 1/100 s.
	i := strings.LastIndexByte(string(raw), ')')
	fields := strings.Fields(string(raw[i+2:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, fields[11], fields[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
