// Package e2e runs the built sandbox-webhook binary with `serve` against a real API
// server, with the webhook configurations that kustomize renders from the shipped
// cert-manager overlay, pointed at the local process.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sandbox-webhook/sandbox-webhook/test/deploy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

var (
	cp     *envtestutil.ControlPlane
	binary string
)

func TestMain(m *testing.M) {
	var cleanup func()
	var err error
	binary, cleanup, err = envtestutil.BuildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := envtestutil.Run(m, envtestutil.Options{}, &cp)
	cleanup()
	os.Exit(code)
}

// render runs kustomize over a folder under manifests/, as `kubectl apply -k` would.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := deploy.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

type syncBuffer = envtestutil.SyncBuffer

func freePort(t *testing.T) int { return envtestutil.FreePort(t) }

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	envtestutil.Eventually(t, what, cond)
}
