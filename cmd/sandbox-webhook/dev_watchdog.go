package main

// dev's watchdog: a second process that stops kube-apiserver and etcd when dev dies
// without stopping them itself (SIGKILL, a crash, a closed terminal).
//
// envtest starts the control plane in process groups of its own, so nothing that ends
// dev reaches them. A parent-death signal (Pdeathsig) cannot be set on them through
// envtest, and in Go it would fire when the OS thread that forked exits, not the process.
// So dev re-executes its own binary as `sandbox-webhook dev-watchdog` in a session of
// its own (a signal to dev's process group or terminal does not reach it), holding the
// read end of a pipe whose only writer is dev. While envtest starts the control plane,
// dev looks for its new child processes every childScanInterval and writes the pid and
// start time of each to the pipe, as well as the folder of its session; a process that
// dev started less than that interval before it died is the one it cannot report. The
// kernel closes the pipe when dev exits in any way; at that end of file the watchdog
// stops each process still running, last started first (SIGTERM, then SIGKILL after a
// bound), removes the folder, and exits. It holds a pidfd for each process from the
// moment it learns of it, so a pid the system has since given to another process is
// never signalled.

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// devWatchdogCommand is the hidden command that runs the watchdog.
	devWatchdogCommand = "dev-watchdog"
	// devSessionPrefix starts the name of dev's session folder; the watchdog removes no
	// other folder.
	devSessionPrefix = "sandbox-webhook-dev-"
	// watchdogTermWait is how long the watchdog lets processes end after SIGTERM before
	// it sends SIGKILL; watchdogKillWait bounds the wait after SIGKILL.
	watchdogTermWait = 15 * time.Second
	watchdogKillWait = 5 * time.Second
	// childScanInterval is how often dev looks for new child processes while envtest
	// starts them.
	childScanInterval = 20 * time.Millisecond
)

// devWatchdog is dev's end of its watchdog: the pipe it writes to and the process.
type devWatchdog struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	w   *os.File
	// reported are the child processes already written to the pipe, by pid and start time.
	reported map[childProcess]bool
}

// startDevWatchdog starts the watchdog; its messages go to stderr.
func startDevWatchdog(stderr io.Writer) (*devWatchdog, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("dev: finding its own binary for the watchdog: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("dev: starting the watchdog: %w", err)
	}
	cmd := exec.Command(exe, devWatchdogCommand)
	cmd.ExtraFiles = []*os.File{r} // fd 3
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("dev: starting the watchdog: %w", err)
	}
	return &devWatchdog{cmd: cmd, w: w, reported: map[childProcess]bool{}}, nil
}

// removeOnExit tells the watchdog dev's session folder.
func (d *devWatchdog) removeOnExit(dir string) error {
	return d.send(fmt.Sprintf("dir %s\n", strconv.Quote(dir)))
}

// reportChildren tells the watchdog every child process of dev it does not know yet.
func (d *devWatchdog) reportChildren() error {
	procs, err := childProcesses(os.Getpid())
	if err != nil {
		return err
	}
	for _, p := range procs {
		if p.pid == d.cmd.Process.Pid {
			continue
		}
		d.mu.Lock()
		known := d.reported[p]
		d.reported[p] = true
		d.mu.Unlock()
		if known {
			continue
		}
		if err := d.send(fmt.Sprintf("pid %d %s\n", p.pid, p.start)); err != nil {
			return err
		}
	}
	return nil
}

// watchChildren reports new child processes until stop is called, then once more, so
// that a process started just before stop is reported too.
func (d *devWatchdog) watchChildren(out io.Writer) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(childScanInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := d.reportChildren(); err != nil {
					fmt.Fprintf(out, "dev: telling the watchdog about kube-apiserver and etcd: %v\n", err)
					return
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
			if err := d.reportChildren(); err != nil {
				fmt.Fprintf(out, "dev: telling the watchdog about kube-apiserver and etcd: %v\n", err)
			}
		})
	}
}

func (d *devWatchdog) send(line string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := io.WriteString(d.w, line); err != nil {
		return fmt.Errorf("the watchdog is gone: %w", err)
	}
	return nil
}

// stop closes the pipe and waits for the watchdog to exit. Once dev has stopped what it
// started, the watchdog finds nothing left to do and exits at once.
func (d *devWatchdog) stop() error {
	d.w.Close()
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("dev: watchdog: %w", err)
		}
		return nil
	case <-time.After(watchdogTermWait + watchdogKillWait + 10*time.Second):
		return errors.New("dev: the watchdog did not exit")
	}
}

// childProcess is a process as /proc shows it; its start time tells a reused pid apart.
type childProcess struct {
	pid   int
	start string
}

// childProcesses are the processes whose parent is ppid.
func childProcesses(ppid int) ([]childProcess, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []childProcess
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(pid); ok && st.ppid == ppid {
			out = append(out, childProcess{pid: pid, start: st.start})
		}
	}
	return out, nil
}

// procStat is what the watchdog reads from /proc/<pid>/stat.
type procStat struct {
	comm, state, start string
	ppid               int
}

func readProcStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, false
	}
	// After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime ...
	fields := strings.Fields(s[end+1:])
	if len(fields) < 20 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(fields[1])
	return procStat{comm: s[open+1 : end], state: fields[0], ppid: ppid, start: fields[19]}, true
}

// guardedProcess is a process the watchdog may have to stop.
type guardedProcess struct {
	pid   int
	name  string
	start string
	// pidfd refers to the process itself, whatever becomes of its pid; -1 on a kernel
	// without pidfd_open, where the start time is checked before each signal instead.
	pidfd int
}

// guard opens a pidfd for the process pid that started at start. It reports false when
// that process has already ended (its pid may be another process's by now).
func guard(pid int, start string) (*guardedProcess, bool) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if !errors.Is(err, unix.ENOSYS) {
			return nil, false
		}
		fd = -1
	}
	g := &guardedProcess{pid: pid, start: start, pidfd: fd}
	// The pidfd is for whatever process had pid when it was opened: the same one only
	// when it started at the same time.
	st, ok := readProcStat(pid)
	if !ok || st.start != start || st.state == "Z" {
		g.close()
		return nil, false
	}
	g.name = st.comm
	return g, true
}

func (g *guardedProcess) close() {
	if g.pidfd >= 0 {
		unix.Close(g.pidfd)
		g.pidfd = -1
	}
}

// exited reports whether the process has ended (a zombie has).
func (g *guardedProcess) exited() bool {
	if g.pidfd >= 0 {
		fds := []unix.PollFd{{Fd: int32(g.pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	}
	st, ok := readProcStat(g.pid)
	return !ok || st.start != g.start || st.state == "Z"
}

func (g *guardedProcess) signal(sig unix.Signal) {
	if g.pidfd >= 0 {
		_ = unix.PidfdSendSignal(g.pidfd, sig, nil, 0)
		return
	}
	if !g.exited() {
		_ = unix.Kill(g.pid, sig)
	}
}

// devWatchdogMain runs the watchdog on the pipe from dev, its fd 3.
func devWatchdogMain(stderr io.Writer) error {
	in := os.NewFile(3, "dev")
	if st, err := in.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return &exitError{code: 2, err: errors.New(devWatchdogCommand + ": runs only under dev")}
	}
	// No terminal signal is for the watchdog, and a closed stderr must not end it early.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	runDevWatchdog(in, stderr)
	return nil
}

// runDevWatchdog reads dev's messages from in until dev exits, then stops whatever dev
// left running and removes its session folder.
func runDevWatchdog(in io.Reader, stderr io.Writer) {
	var procs []*guardedProcess
	var dirs []string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "pid "); ok {
			pidText, start, _ := strings.Cut(rest, " ")
			if pid, err := strconv.Atoi(pidText); err == nil && pid > 0 {
				if g, ok := guard(pid, start); ok {
					procs = append(procs, g)
				}
			}
		} else if rest, ok := strings.CutPrefix(line, "dir "); ok {
			if dir, err := strconv.Unquote(rest); err == nil && filepath.IsAbs(dir) && strings.HasPrefix(filepath.Base(dir), devSessionPrefix) {
				dirs = append(dirs, dir)
			}
		}
	}
	// End of file: dev has exited, or it has stopped everything and closed the pipe.
	stopped := stopGuarded(procs)
	for _, g := range procs {
		g.close()
	}
	for _, dir := range dirs {
		_ = os.RemoveAll(dir)
	}
	if len(stopped) > 0 {
		fmt.Fprintf(stderr, "sandbox-webhook %s: dev exited without stopping what it started; stopped %s\n", devWatchdogCommand, strings.Join(stopped, ", "))
	}
}

// stopGuarded stops the processes still running one at a time, last started first (the
// API server before its etcd, as envtest stops them): SIGTERM, then SIGKILL if it
// outlives watchdogTermWait. It returns what it had to stop.
func stopGuarded(procs []*guardedProcess) []string {
	order := slices.Clone(procs)
	slices.SortStableFunc(order, func(a, b *guardedProcess) int {
		as, _ := strconv.ParseUint(a.start, 10, 64)
		bs, _ := strconv.ParseUint(b.start, 10, 64)
		return cmp.Compare(bs, as)
	})
	var stopped []string
	for _, g := range order {
		if g.exited() {
			continue
		}
		stopped = append(stopped, fmt.Sprintf("%s (pid %d)", g.name, g.pid))
		g.signal(unix.SIGTERM)
		if !waitExited(g, watchdogTermWait) {
			g.signal(unix.SIGKILL)
			waitExited(g, watchdogKillWait)
		}
	}
	return stopped
}

// waitExited waits up to bound for g to end and reports whether it did.
func waitExited(g *guardedProcess, bound time.Duration) bool {
	deadline := time.Now().Add(bound)
	for !g.exited() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
