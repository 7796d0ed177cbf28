package envtestutil

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Eventually polls cond every 50ms until it holds. The 90-second bound only guards
// against a hang and is never the thing tested; on it, the test fails with what and
// cond's last reason.
func Eventually(t testing.TB, what string, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: never happened; last: %s", what, last)
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// SyncBuffer collects output written from several goroutines (a process's stdout and
// stderr, a manager's log) and reads it while writes go on.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// BuildBinary builds cmd/sandbox-webhook into a new temporary folder and returns the
// binary's path and a function that removes the folder.
func BuildBinary() (string, func(), error) {
	dir, err := os.MkdirTemp("", "sandbox-webhook-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	binary := filepath.Join(dir, "sandbox-webhook")
	build := exec.Command("go", "build", "-o", binary, "./cmd/sandbox-webhook")
	build.Dir = RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("building the binary: %w", err)
	}
	return binary, cleanup, nil
}

// WarningRecorder collects the warnings the API server sends to a client.
type WarningRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (w *WarningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

// Take returns the warnings recorded so far and forgets them.
func (w *WarningRecorder) Take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.warnings
	w.warnings = nil
	return out
}

// WarningClient is an administrator's client of the control plane that records the API
// server's warnings.
func (c *ControlPlane) WarningClient(t testing.TB) (client.Client, *WarningRecorder) {
	t.Helper()
	w := &WarningRecorder{}
	cfg := rest.CopyConfig(c.Config)
	cfg.WarningHandler = nil
	cfg.WarningHandlerWithContext = w
	cl, err := client.New(cfg, client.Options{Scheme: c.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cl, w
}

// Fetch GETs url with c and returns the body of a 200 answer.
func Fetch(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, err
}
