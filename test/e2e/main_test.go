// Package e2e runs the built sandbox-webhook binary: `check` over files, and `dev`,
// which starts its own API server. `serve` against the rendered manifests is in
// test/deploy/e2e, beside the kustomize dependency.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

var binary string

func TestMain(m *testing.M) {
	var cleanup func()
	var err error
	binary, cleanup, err = envtestutil.BuildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

type syncBuffer = envtestutil.SyncBuffer

// eventually polls cond until it holds; see envtestutil.Eventually.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	envtestutil.Eventually(t, what, cond)
}

// runBinary runs the binary to completion and returns its exit code and output.
func runBinary(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errOut.String()
}
