package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

func TestDevBinaryStartsAClusterWithTheWebhookInstalled(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	out := &syncBuffer{}
	assets, err := envtestutil.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "dev", "--assets", assets, "--kubeconfig-out", kubeconfig, "--tenant", "tenant-dev")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("dev output:\n%s", out.String())
		}
	})
	eventually(t, "dev says it is ready", func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("dev exited early: %v", err)
		default:
		}
		return strings.Contains(out.String(), "dev: ready"), "not yet"
	})
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(restCfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pod := sandboxPod("tenant-dev", "sb-dev")
	if err := c.Create(context.Background(), pod); err != nil {
		t.Fatalf("creating a sandbox pod through the dev API server: %v", err)
	}
	if v, _ := envValue(pod.Spec.Containers[0], "OPENSHELL_GATEWAY_SA_TOKEN_PATH"); v != "/var/run/secrets/openshell/token" {
		t.Fatalf("the dev webhook did not inject the token path: env %v", pod.Spec.Containers[0].Env)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev exited with %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not stop on SIGINT")
	}
}
