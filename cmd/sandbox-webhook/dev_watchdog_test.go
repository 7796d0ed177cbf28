package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startSleeper starts a child process that would run far longer than any test.
func startSleeper(t *testing.T) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, done
}

func TestDevWatchdogStopsWhatDevLeftAndRemovesTheSessionFolder(t *testing.T) {
	leftBehind, leftDone := startSleeper(t)
	other, otherDone := startSleeper(t)
	st, ok := readProcStat(leftBehind.Process.Pid)
	if !ok {
		t.Fatal("no /proc entry for the child")
	}
	session, err := os.MkdirTemp(t.TempDir(), devSessionPrefix)
	if err != nil {
		t.Fatal(err)
	}
	notSession := t.TempDir()
	if err := os.WriteFile(filepath.Join(session, "data"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The second process is named with a start time it does not have: a pid that now
	// belongs to another process, which the watchdog must leave alone.
	in := strings.NewReader(fmt.Sprintf("pid %d %s\npid %d 1\ndir %q\ndir %q\n",
		leftBehind.Process.Pid, st.start, other.Process.Pid, session, notSession))
	var out bytes.Buffer
	runDevWatchdog(in, &out) // the reader's end of file stands for dev's exit

	select {
	case err := <-leftDone:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			t.Errorf("the process dev left ended with %v, want SIGTERM", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the process dev left still runs")
	}
	select {
	case err := <-otherDone:
		t.Fatalf("a process named with another start time was stopped: %v", err)
	default:
	}
	if _, err := os.Stat(session); !os.IsNotExist(err) {
		t.Errorf("session folder %s: %v, want it removed", session, err)
	}
	if _, err := os.Stat(notSession); err != nil {
		t.Errorf("a folder that is not a session's was removed: %v", err)
	}
	want := fmt.Sprintf("stopped sleep (pid %d)", leftBehind.Process.Pid)
	if !strings.Contains(out.String(), want) {
		t.Errorf("output %q does not say %q", out.String(), want)
	}
}

func TestDevWatchdogIsQuietWhenDevStoppedEverything(t *testing.T) {
	cmd, done := startSleeper(t)
	st, _ := readProcStat(cmd.Process.Pid)
	_ = cmd.Process.Kill()
	<-done
	var out bytes.Buffer
	runDevWatchdog(strings.NewReader(fmt.Sprintf("pid %d %s\n", cmd.Process.Pid, st.start)), &out)
	if out.Len() != 0 {
		t.Errorf("output %q, want none", out.String())
	}
}
