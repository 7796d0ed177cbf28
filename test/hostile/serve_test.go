package hostile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

// The suite runs the built binary as `serve` against the package's control plane and
// attacks its HTTPS port directly, as any pod in the cluster can.

var (
	cp     *envtestutil.ControlPlane
	binary string
)

func TestMain(m *testing.M) {
	var cleanup func()
	var err error
	binary, cleanup, err = envtestutil.BuildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := envtestutil.Run(stopServeAfter{m}, envtestutil.Options{}, &cp)
	cleanup()
	os.Exit(code)
}

// stopServeAfter stops the package's serve once the tests are done, before the
// control plane stops.
type stopServeAfter struct{ m *testing.M }

func (s stopServeAfter) Run() int {
	code := s.m.Run()
	if theServe != nil {
		theServe.Stop()
	}
	return code
}

// peakRSSBound is the stated bound on the serve process's peak resident memory with
// eight hostile requests of up to 7 MB in flight: the Deployment's memory limit, above
// which the container would be killed. serve runs with the same --memory-limit.
const peakRSSBound = 256 << 20

type served struct {
	*envtestutil.Serve
}

var (
	serveOnce sync.Once
	theServe  *envtestutil.Serve
	serveErr  error
)

// startServe runs one serve for the package, with a tenant namespace "team-a".
func startServe(t *testing.T) *served {
	t.Helper()
	serveOnce.Do(func() {
		ns := envtestutil.NamespaceObject("team-a", map[string]string{"sandbox-webhook.io/tenant": "true"})
		if serveErr = cp.Client.Create(context.Background(), ns); serveErr != nil {
			return
		}
		// The Deployment's memory limit, as the Downward API passes it. An ordinary
		// pod may wait for a turn behind eight heavy ones on a slow machine: the test
		// checks that it is injected, and logs how long it took, rather than the 429
		// a shorter queue timeout gives.
		theServe, serveErr = envtestutil.StartServe(cp, binary, "  reviewQueueTimeout: 20s\n", "--memory-limit=256Mi")
	})
	if serveErr != nil {
		t.Fatal(serveErr)
	}
	if theServe.Exited() {
		t.Fatalf("serve is no longer running:\n%s", theServe.Out.String())
	}
	return &served{theServe}
}

// post sends body to path and returns the status and the answer.
func (p *served) post(path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, p.URL(path)+"?timeout=10s", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, answer, err
}

// status reads a line of the serve process's /proc status, in bytes.
func (p *served) status(field string) int64 {
	return envtestutil.ProcStatus(p.Cmd.Process.Pid, field)
}

// checkAnswer: a review (allowed or not) or an HTTP error, short, quoting nothing.
func checkAnswer(t *testing.T, name string, code int, answer []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	for _, quoted := range []string{"[[[[", `{"a":{"a"`, "{{{{", "not json", "aaaaaaaa", "PuTTY-User", "BEGIN RSA", "AGE-SECRET", "QUJDQUJD"} {
		if bytes.Contains(answer, []byte(quoted)) {
			t.Errorf("%s: the answer quotes the input: %.300s", name, answer)
		}
	}
	if len(answer) > 8192 {
		t.Errorf("%s: an answer of %d bytes", name, len(answer))
	}
	if code != http.StatusOK {
		if code < 400 {
			t.Errorf("%s: status %d", name, code)
		}
		return nil
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(answer, &review); err != nil || review.Response == nil {
		t.Fatalf("%s: not a review: %v %.300s", name, err, answer)
	}
	return review.Response
}

// sandboxPod is an ordinary sandbox pod's review.
var sandboxPod = SandboxPodReview(`{"serviceAccountName":"sandbox","containers":[{"name":"agent","image":"agent:1","env":[{"name":"HOME","value":"/sandbox"}]}]}`)

// checkInjected: the ordinary sandbox pod is admitted with the injection.
func checkInjected(t *testing.T, p *served) {
	t.Helper()
	code, answer, err := p.post("/mutate-pods", sandboxPod)
	if err != nil {
		t.Fatalf("an ordinary sandbox pod: %v", err)
	}
	resp := checkAnswer(t, "ordinary sandbox pod", code, answer)
	if resp == nil || !resp.Allowed || len(resp.Patch) == 0 || !bytes.Contains(resp.Patch, []byte("openshell-sa-token")) {
		t.Fatalf("an ordinary sandbox pod was not injected: %d %.300s", code, answer)
	}
}

func TestEveryHostileReviewGetsAWellFormedAnswer(t *testing.T) {
	p := startServe(t)
	checkInjected(t, p)
	for _, r := range Reviews() {
		for _, path := range []string{"/mutate-pods", "/validate-private-keys"} {
			start := time.Now()
			code, answer, err := p.post(path, r.Body)
			if err != nil {
				t.Fatalf("%s %s: %v", path, r.Name, err)
			}
			resp := checkAnswer(t, path+" "+r.Name, code, answer)
			t.Logf("%s %s (%d bytes): %d in %s, allowed %v", path, r.Name, len(r.Body), code, time.Since(start).Round(time.Millisecond), resp != nil && resp.Allowed)
			if resp != nil && resp.Allowed && !r.Pod && !r.ConfigMap {
				t.Errorf("%s %s: allowed", path, r.Name)
			}
		}
	}
	checkInjected(t, p)
	t.Logf("peak RSS %d MiB", p.status("VmHWM")>>20)
}

// The heaviest families, eight at a time, while ordinary sandbox pods keep coming.
func TestEightHostileReviewsInFlightLeaveRoomForSandboxPods(t *testing.T) {
	p := startServe(t)
	var heavy [][]byte
	for _, r := range Reviews() {
		if len(r.Body) > 900<<10 {
			heavy = append(heavy, r.Body)
		}
	}
	const rounds = 6
	var wg sync.WaitGroup
	var failures atomic.Int64
	stop := make(chan struct{})
	for w := range 8 {
		wg.Go(func() {
			for i := range rounds * len(heavy) / 8 {
				body := heavy[(w+i*8)%len(heavy)]
				path := []string{"/mutate-pods", "/validate-private-keys"}[i%2]
				code, _, err := p.post(path, body)
				if err != nil || code != http.StatusOK && code != http.StatusTooManyRequests {
					failures.Add(1)
					t.Errorf("hostile %s: %d %v", path, code, err)
				}
			}
		})
	}
	go func() { wg.Wait(); close(stop) }()
	var slowest time.Duration
	n := 0
	for done := false; !done; n++ {
		select {
		case <-stop:
			done = true
		default:
		}
		start := time.Now()
		checkInjected(t, p)
		slowest = max(slowest, time.Since(start))
	}
	peak := p.status("VmHWM")
	t.Logf("%d ordinary sandbox pods injected while %d hostile requests ran, the slowest in %s; peak RSS %d MiB (bound %d MiB)",
		n, 8*(rounds*len(heavy)/8), slowest.Round(time.Millisecond), peak>>20, peakRSSBound>>20)
	if peak > peakRSSBound {
		t.Errorf("peak RSS %d MiB, over the stated bound of %d MiB", peak>>20, peakRSSBound>>20)
	}
	if p.Exited() {
		t.Fatalf("serve exited:\n%s", p.Out.String())
	}
}

// Twenty connections announce 7 MiB and send one byte: nothing is allocated for what
// has not arrived, and the webhook keeps answering.
func TestLyingContentLengthsCostNothing(t *testing.T) {
	p := startServe(t)
	checkInjected(t, p)
	before := p.status("VmRSS")
	var conns []*tls.Conn
	for range 20 {
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port), p.TLS)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /mutate-pods?timeout=30s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", 7<<20)
		conns = append(conns, c)
	}
	checkInjected(t, p)
	after := p.status("VmRSS")
	t.Logf("RSS %d MiB before, %d MiB with 20 connections announcing 7 MiB each", before>>20, after>>20)
	if after-before > 32<<20 {
		t.Errorf("RSS grew by %d MiB for 20 bytes received", (after-before)>>20)
	}
	for _, c := range conns {
		c.Close()
	}
}

// A body that trickles in is answered when the review's time is up, not held open.
func TestATrickledBodyIsAnsweredWhenTheReviewsTimeEnds(t *testing.T) {
	p := startServe(t)
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port), p.TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /validate-private-keys?timeout=2s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 100000)
	answered := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		answered <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case a := <-answered:
			t.Logf("answered after %s and %d bytes: %.200s", time.Since(start).Round(time.Millisecond), i, a)
			if !strings.Contains(a, "reading the request") {
				t.Errorf("answer: %.300s", a)
			}
			checkInjected(t, p)
			return
		case <-time.After(200 * time.Millisecond):
		}
		if i == 300 { // a minute of trickling: the webhook holds the request open
			t.Fatal("no answer to a body that trickles in")
		}
		_, _ = c.Write([]byte(" "))
	}
}

// Over HTTP/2, as the API server calls, a body that trickles in is cut off too.
func TestATrickledHTTP2BodyIsAnsweredWhenTheReviewsTimeEnds(t *testing.T) {
	p := startServe(t)
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, p.URL("/mutate-pods")+"?timeout=2s", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	answered := make(chan string, 1)
	go func() {
		resp, err := p.Client.Do(req)
		if err != nil {
			answered <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- fmt.Sprintf("%s %d %s", resp.Proto, resp.StatusCode, b)
	}()
	defer pw.Close()
	for i := 0; ; i++ {
		select {
		case a := <-answered:
			t.Logf("answered after %d bytes: %.200s", i, a)
			if !strings.HasPrefix(a, "HTTP/2") || !strings.Contains(a, "reading the request") {
				t.Errorf("answer: %.300s", a)
			}
			checkInjected(t, p)
			return
		case <-time.After(200 * time.Millisecond):
		}
		if i == 300 { // a minute of trickling: the webhook holds the request open
			t.Fatal("no answer to a body that trickles in")
		}
		_, _ = pw.Write([]byte(" "))
	}
}
