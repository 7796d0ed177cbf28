// Package apibench measures what users feel: pod creates (server-side dry run) through a
// real kube-apiserver with no webhook, with the mutating webhook, and with both, the
// built binary running as `serve` beside it; and serve's memory with many tenants and
// unrelated Secrets. It only prints figures: `make bench-api` runs it.
package apibench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
	"github.com/sandbox-webhook/sandbox-webhook/test/nullwebhook"
)

var (
	binaryFlag = flag.String("apibench.binary", "", "sandbox-webhook binary to run as serve (default: build one)")
	creates    = flag.Int("apibench.creates", 200, "pod creates per phase per round")
	rounds     = flag.Int("apibench.rounds", 3, "rounds; each runs the three phases in turn")
	tenants    = flag.Int("apibench.tenants", 1000, "tenant namespaces for the memory benchmark")
	secrets    = flag.Int("apibench.secrets", 10000, "unrelated Secrets for the memory benchmark")
	loadFlag   = flag.Int("apibench.load", 3000, "pod creates (8 at a time) of the memory benchmark's load")
	profileDir = flag.String("apibench.profiles", "", "folder for serve's heap profiles (default: a temporary one)")
	cpuProfile = flag.String("apibench.cpuprofile", "", "file for serve's CPU profile over the last round's mutating+validating phase")
	apiProfile = flag.String("apibench.apiserverprofile", "", "file prefix for kube-apiserver's CPU profiles over the last round of each phase (<prefix>-<phase>.pprof)")
)

var (
	cp     *envtestutil.ControlPlane
	binary string
	// apiDebugSocket is where kube-apiserver serves /debug/pprof with -apibench.apiserverprofile.
	apiDebugSocket string
)

func TestMain(m *testing.M) {
	nullwebhook.Hook()
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		// No benchmark asked for: nothing here needs a control plane.
		os.Exit(m.Run())
	}
	binary = *binaryFlag
	cleanup := func() {}
	if binary == "" {
		var err error
		if binary, cleanup, err = envtestutil.BuildBinary(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	opts := envtestutil.Options{}
	if *apiProfile != "" {
		// kube-apiserver serves its profiles without authentication on this socket only.
		dir, err := os.MkdirTemp("", "apibench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		apiDebugSocket = filepath.Join(dir, "apiserver-debug.sock")
		opts.APIServerArgs = map[string]string{"debug-socket-path": apiDebugSocket}
		built := cleanup
		cleanup = func() { built(); os.RemoveAll(dir) }
	}
	code := envtestutil.Run(m, opts, &cp)
	cleanup()
	os.Exit(code)
}

// served is one serve process.
type served struct {
	cmd     *exec.Cmd
	out     *envtestutil.SyncBuffer
	port    int
	metrics int
	pprof   int
	ca      []byte
	exited  atomic.Bool
}

// startServe runs the binary as serve (leader election off) with the Deployment's memory
// limit, and waits until it is ready. With profiled, serve also serves /debug/pprof
// (and samples the heap finely, which costs CPU).
func startServe(b *testing.B, profiled bool) *served {
	b.Helper()
	dir := b.TempDir()
	bundle, err := certs.SelfSigned([]string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	certDir := filepath.Join(dir, "certs")
	if err := bundle.WriteServing(certDir, "tls.crt", "tls.key"); err != nil {
		b.Fatal(err)
	}
	kubeconfig, err := cp.KubeConfig()
	if err != nil {
		b.Fatal(err)
	}
	config := "apiVersion: sandbox-webhook.io/v1alpha1\nkind: Config\nserver:\n  leaderElection: false\n  shutdownDelay: 0s\n"
	configPath, kubeconfigPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "kubeconfig")
	for path, data := range map[string][]byte{configPath: []byte(config), kubeconfigPath: kubeconfig} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	ports := freePorts(b, 4)
	p := &served{out: &envtestutil.SyncBuffer{}, port: ports[0], metrics: ports[2], pprof: ports[3], ca: bundle.CAPEM}
	args := []string{"serve", "--config", configPath, "--kubeconfig", kubeconfigPath,
		fmt.Sprintf("--port=%d", p.port), "--cert-dir", certDir,
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", p.metrics),
		"--memory-limit=256Mi", "--log-level=error"}
	if profiled {
		args = append(args, fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", p.pprof))
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); p.exited.Store(true) }()
	b.Cleanup(p.stop)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if p.exited.Load() || time.Now().After(deadline) {
			b.Fatalf("serve did not become ready:\n%s", p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePorts(b *testing.B, n int) []int {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// stop kills serve and waits until it has exited.
func (p *served) stop() {
	_ = p.cmd.Process.Kill()
	for !p.exited.Load() {
		time.Sleep(10 * time.Millisecond)
	}
}

// cpu is the serve process's user+system CPU so far.
func (p *served) cpu(b *testing.B) time.Duration {
	d, err := envtestutil.ProcCPU(p.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// status is a line of the serve process's /proc status, in bytes.
func (p *served) status(field string) int64 {
	return envtestutil.ProcStatus(p.cmd.Process.Pid, field)
}

// requests is serve's controller_runtime_webhook_requests_total for path.
func (p *served) requests(b *testing.B, path string) float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.metrics))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "controller_runtime_webhook_requests_total{") || !strings.Contains(line, `webhook="`+path+`"`) {
			continue
		}
		v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		total += v
	}
	return total
}

// memory is serve's resident memory and the Go runtime's view of it, in MiB.
func (p *served) memory(b *testing.B) string {
	stats := p.gauges(b, "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes")
	return fmt.Sprintf("VmRSS %.1f (anon %.1f, file %.1f), VmHWM %.1f; Go heap in use %.1f, idle %.1f (released %.1f), stacks %.1f, from the OS %.1f",
		mib(p.status("VmRSS")), mib(p.status("RssAnon")), mib(p.status("RssFile")), mib(p.status("VmHWM")),
		stats[0]/(1<<20), stats[1]/(1<<20), stats[2]/(1<<20), stats[3]/(1<<20), stats[4]/(1<<20))
}

// gauges reads metrics without labels from serve's /metrics.
func (p *served) gauges(b *testing.B, names ...string) []float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.metrics))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := make([]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if i := slices.Index(names, name); ok && i >= 0 {
			out[i], _ = strconv.ParseFloat(value, 64)
		}
	}
	return out
}

// heapProfile saves serve's heap profile (after a GC) as name in the profile folder and
// returns the top of `go tool pprof -top` by in-use bytes.
func (p *served) heapProfile(b *testing.B, name string) string {
	dir := *profileDir
	if dir == "" {
		dir = b.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	profile, err := envtestutil.Fetch(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1", p.pprof))
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, profile, 0o644); err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=15", binary, path).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%s: go tool pprof: %v\n%s", path, err, out)
	}
	return path + "\n" + string(out)
}

// cpuProfile saves serve's CPU profile over the next 5s as path, then closes done.
func (p *served) cpuProfile(b *testing.B, path string, done chan<- struct{}) {
	saveCPUProfile(b, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d", p.pprof), path, done)
}

// saveCPUProfile saves the CPU profile that base/debug/pprof/profile gives over the next
// 5s as path, then closes done.
func saveCPUProfile(b *testing.B, c *http.Client, base, path string, done chan<- struct{}) {
	defer close(done)
	profile, err := envtestutil.Fetch(c, base+"/debug/pprof/profile?seconds=5")
	if err == nil {
		err = os.WriteFile(path, profile, 0o644)
	}
	if err != nil {
		b.Error(err)
	}
}

// webhookConfigurations are the shipped configurations pointed by URL at base, which
// ca signed, each webhook at path(its shipped path).
func webhookConfigurations(b *testing.B, base string, ca []byte, path func(string) string) (*admissionregv1.MutatingWebhookConfiguration, *admissionregv1.ValidatingWebhookConfiguration) {
	raw, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), "manifests", "base", "webhooks.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	var mutating *admissionregv1.MutatingWebhookConfiguration
	var validating *admissionregv1.ValidatingWebhookConfiguration
	point := func(cc *admissionregv1.WebhookClientConfig) {
		u := base + path(*cc.Service.Path)
		*cc = admissionregv1.WebhookClientConfig{URL: &u, CABundle: ca}
	}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := docs.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		var meta metav1.TypeMeta
		if err := utilyaml.Unmarshal(doc, &meta); err != nil {
			b.Fatal(err)
		}
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			mutating = &admissionregv1.MutatingWebhookConfiguration{}
			if err := utilyaml.Unmarshal(doc, mutating); err != nil {
				b.Fatal(err)
			}
			for i := range mutating.Webhooks {
				point(&mutating.Webhooks[i].ClientConfig)
			}
		case "ValidatingWebhookConfiguration":
			validating = &admissionregv1.ValidatingWebhookConfiguration{}
			if err := utilyaml.Unmarshal(doc, validating); err != nil {
				b.Fatal(err)
			}
			for i := range validating.Webhooks {
				point(&validating.Webhooks[i].ClientConfig)
			}
		}
	}
	if mutating == nil || validating == nil {
		b.Fatal("manifests/base/webhooks.yaml: want one Mutating- and one ValidatingWebhookConfiguration")
	}
	return mutating, validating
}

// phase is which webhook configurations are installed.
type phase int

const (
	noWebhook phase = iota
	// nullWebhooks are both configurations pointed at the null webhook, which decodes
	// the review's envelope and allows without a patch: what any webhook costs.
	nullWebhooks
	mutatingOnly
	bothWebhooks
)

var phases = []phase{noWebhook, nullWebhooks, mutatingOnly, bothWebhooks}

func (ph phase) String() string {
	return [...]string{"no webhook", "null webhooks", "mutating", "mutating+validating"}[ph]
}

// mutating and validating say whether serve's webhooks are installed in ph.
func (ph phase) mutating() bool   { return ph == mutatingOnly || ph == bothWebhooks }
func (ph phase) validating() bool { return ph == bothWebhooks }

// install makes the installed configurations those of ph and waits until the API server
// acts on them: a probe create calls exactly the webhooks ph has.
func install(b *testing.B, p *served, null *nullwebhook.Server, ph phase, ns string) {
	b.Helper()
	ctx := context.Background()
	mutating, validating := webhookConfigurations(b, fmt.Sprintf("https://127.0.0.1:%d", p.port), p.ca, func(path string) string { return path })
	if ph == nullWebhooks {
		mutating, validating = webhookConfigurations(b, null.Base, null.CA, func(string) string { return nullwebhook.PathEnvelope })
	}
	apply := func(obj client.Object, want bool) {
		err := cp.Client.Delete(ctx, obj)
		if err != nil && !apierrors.IsNotFound(err) {
			b.Fatal(err)
		}
		if want {
			obj.SetResourceVersion("")
			if err := cp.Client.Create(ctx, obj); err != nil {
				b.Fatal(err)
			}
		}
	}
	apply(mutating, ph != noWebhook)
	apply(validating, ph == nullWebhooks || ph.validating())
	nullCalls := func() int64 {
		if null == nil {
			return 0
		}
		return null.Calls(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, v, n := p.requests(b, "/mutate-pods"), p.requests(b, "/validate-private-keys"), nullCalls()
		_, err := dryRunCreate(ctx, sandboxPod(ns, "probe"))
		dm, dv, dn := p.requests(b, "/mutate-pods")-m, p.requests(b, "/validate-private-keys")-v, nullCalls()-n
		if err == nil && (dm > 0) == ph.mutating() && (dv > 0) == ph.validating() && (dn == 2) == (ph == nullWebhooks) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: the API server does not call the webhooks as installed (mutate %v, validate %v, null %v, err %v)", ph, dm, dv, dn, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sandboxPod is a pod as the agent-sandbox controller makes it from a Sandbox.
func sandboxPod(ns, name string) *corev1.Pod {
	isController := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      name,
			Labels: map[string]string{
				"agents.x-k8s.io/sandbox-name-hash": "5f2c9a1e",
				"app.kubernetes.io/name":            "openshell-sandbox",
			},
			Annotations: map[string]string{"openshell.io/sandbox-id": "sb-01hx7k2m3n4p5q6r7s8t9v0w1x"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "agents.x-k8s.io/v1beta1", Kind: "Sandbox", Name: name,
				UID: types.UID("8d7f6a52-3c1b-4e5f-9a0b-1c2d3e4f5a6b"), Controller: &isController,
			}},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "sandbox",
			InitContainers: []corev1.Container{{
				Name: "workspace-init", Image: "ghcr.io/example/openshell-init:0.9.1",
				Command:      []string{"/bin/sh", "-c", "cp -r /seed/. /workspace/"},
				VolumeMounts: []corev1.VolumeMount{{Name: "workspace", MountPath: "/workspace"}},
			}},
			Containers: []corev1.Container{{
				Name: "agent", Image: "ghcr.io/example/openshell-agent:0.9.1",
				Args: []string{"--workspace", "/workspace", "--log-format", "json"},
				Env: []corev1.EnvVar{
					{Name: "HOME", Value: "/workspace"},
					{Name: "OPENSHELL_SANDBOX_ID", Value: "sb-01hx7k2m3n4p5q6r7s8t9v0w1x"},
					{Name: "LOG_LEVEL", Value: "info"},
					{Name: "ANTHROPIC_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "anthropic"}, Key: "api-key"}}},
				},
				Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				VolumeMounts: []corev1.VolumeMount{{Name: "workspace", MountPath: "/workspace"}, {Name: "tmp", MountPath: "/tmp"}},
			}},
			Volumes: []corev1.Volume{
				{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		},
	}
}

func dryRunCreate(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	err := cp.Client.Create(ctx, pod, client.DryRunAll)
	return pod, err
}

// tenant creates a tenant namespace with the gateway ServiceAccount, the pods'
// ServiceAccounts and, when credential, a usable inference credential.
func tenant(ctx context.Context, ns string, credential bool, unrelatedSecrets int) error {
	if err := cp.Client.Create(ctx, envtestutil.NamespaceObject(ns, map[string]string{"sandbox-webhook.io/tenant": "true"})); err != nil {
		return err
	}
	for _, sa := range []string{"openshell-gateway", "sandbox", "default"} {
		if err := cp.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}); err != nil {
			return err
		}
	}
	if credential {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "anthropic", Labels: map[string]string{"sandbox-webhook.io/inference-provider": "anthropic"}},
			StringData: map[string]string{"api-key": "sk-ant-benchmark-not-a-real-key"},
		}
		if err := cp.Client.Create(ctx, s); err != nil {
			return err
		}
	}
	for i := range unrelatedSecrets {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("app-config-%d", i), Labels: map[string]string{"app": "unrelated"}},
			Data:       map[string][]byte{"config.json": bytes.Repeat([]byte("x"), 1024)},
		}
		if err := cp.Client.Create(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// percentile of sorted durations, q in [0,1].
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// patchFigures is the size and operation count of the mutating webhook's patch for the
// benchmark's pod, asked of serve directly.
func patchFigures(b *testing.B, p *served, ns string) (size, ops int) {
	pod := sandboxPod(ns, "patch-probe")
	raw, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "apibench", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		b.Fatal(err)
	}
	c := tlsClient(p.ca)
	resp, err := c.Post(fmt.Sprintf("https://127.0.0.1:%d/mutate-pods", p.port), "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var answer admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Response == nil {
		b.Fatalf("mutate-pods answer: %v", err)
	}
	var patch []json.RawMessage
	if err := json.Unmarshal(answer.Response.Patch, &patch); err != nil {
		b.Fatalf("patch: %v", err)
	}
	return len(answer.Response.Patch), len(patch)
}

// BenchmarkAPIServerPodCreates measures sandbox pod creates (server-side dry run, one at
// a time) through the API server in four phases, interleaved over rounds: no webhook
// configuration, both pointed at a null webhook, serve's mutating one, both of serve's.
// It prints p50/p99 per phase, the ratios to the no-webhook p50, serve's and the API
// server's CPU per create and the webhook calls per create. Run it once: -benchtime=1x.
func BenchmarkAPIServerPodCreates(b *testing.B) {
	ctx := context.Background()
	const ns = "apibench-team"
	if err := tenant(ctx, ns, true, 0); err != nil {
		b.Fatal(err)
	}
	p := startServe(b, *cpuProfile != "")
	null := nullwebhook.Start(b)
	patchBytes, patchOps := patchFigures(b, p, ns)
	type figures struct {
		latencies        []time.Duration
		cpu, apiCPU      time.Duration
		mutate, validate float64
	}
	all := make([]figures, len(phases))
	apiPID, err := cp.APIServerPID()
	if err != nil {
		b.Fatal(err)
	}
	apiCPU := func() time.Duration {
		d, err := envtestutil.ProcCPU(apiPID)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	apiDebug := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", apiDebugSocket)
	}}}
	for range b.N {
		for r := range *rounds {
			for _, ph := range phases {
				install(b, p, null, ph, ns)
				for i := range 10 { // warm the connections
					if _, err := dryRunCreate(ctx, sandboxPod(ns, fmt.Sprintf("warm-%d", i))); err != nil {
						b.Fatal(err)
					}
				}
				f := &all[ph]
				var profiles []chan struct{}
				profile := func(run func(done chan<- struct{})) {
					done := make(chan struct{})
					profiles = append(profiles, done)
					go run(done)
				}
				last := r == *rounds-1
				if *cpuProfile != "" && ph == bothWebhooks && last {
					profile(func(done chan<- struct{}) { p.cpuProfile(b, *cpuProfile, done) })
				}
				if *apiProfile != "" && last {
					path := fmt.Sprintf("%s-%s.pprof", *apiProfile, strings.ReplaceAll(ph.String(), " ", "-"))
					profile(func(done chan<- struct{}) { saveCPUProfile(b, apiDebug, "http://apiserver", path, done) })
				}
				m0, v0, cpu0, api0 := p.requests(b, "/mutate-pods"), p.requests(b, "/validate-private-keys"), p.cpu(b), apiCPU()
				for i := range *creates {
					pod := sandboxPod(ns, fmt.Sprintf("sandbox-%d-%d", r, i))
					start := time.Now()
					created, err := dryRunCreate(ctx, pod)
					f.latencies = append(f.latencies, time.Since(start))
					if err != nil {
						b.Fatalf("%s: %v", ph, err)
					}
					if injected := created.Annotations["sandbox-webhook.io/injected"] != ""; injected != ph.mutating() {
						b.Fatalf("%s: injected=%v", ph, injected)
					}
				}
				f.cpu += p.cpu(b) - cpu0
				f.apiCPU += apiCPU() - api0
				for _, done := range profiles {
					<-done
				}
				f.mutate += p.requests(b, "/mutate-pods") - m0
				f.validate += p.requests(b, "/validate-private-keys") - v0
			}
		}
	}
	install(b, p, null, noWebhook, ns)
	base := time.Duration(0)
	fmt.Printf("\nsandbox pod creates (server-side dry run, concurrency 1): %d rounds x %d creates per phase\n", *rounds, *creates)
	fmt.Printf("%-20s %8s %8s %9s %9s %14s %16s %14s\n", "phase", "p50 ms", "p99 ms", "p50 ratio", "p99 ratio", "serve CPU/op", "apiserver CPU/op", "calls/op m+v")
	var base99 time.Duration
	for ph := range all {
		f := &all[ph]
		slices.Sort(f.latencies)
		n := float64(len(f.latencies))
		p50, p99 := percentile(f.latencies, 0.5), percentile(f.latencies, 0.99)
		if ph == int(noWebhook) {
			base, base99 = p50, p99
		}
		cpu := float64(f.cpu) / float64(time.Millisecond) / n
		api := float64(f.apiCPU) / float64(time.Millisecond) / n
		fmt.Printf("%-20s %8.2f %8.2f %8.2fx %8.2fx %11.3f ms %13.3f ms %7.2f+%.2f\n", phase(ph), ms(p50), ms(p99),
			float64(p50)/float64(base), float64(p99)/float64(base99), cpu, api, f.mutate/n, f.validate/n)
		short := strings.ReplaceAll(phase(ph).String(), " ", "-")
		b.ReportMetric(ms(p50), "p50-ms-"+short)
		b.ReportMetric(cpu, "serve-cpu-ms/create-"+short)
		b.ReportMetric(api, "apiserver-cpu-ms/create-"+short)
	}
	fmt.Printf("mutating webhook's patch for this pod: %d bytes, %d operations\n", patchBytes, patchOps)
	fmt.Printf("CPU is read from /proc in 10 ms ticks over %d creates per phase; the no-webhook row's serve CPU is serve's idle CPU.\n\n", *rounds**creates)
}

// BenchmarkServeMemory measures serve's peak RSS (VmHWM) with many tenant namespaces
// (each with the gateway ServiceAccount) and unrelated Secrets, idle and under a load of
// sandbox pod creates through the API server with both webhooks, and prints the top of
// its heap profile. Run it once: -benchtime=1x.
func BenchmarkServeMemory(b *testing.B) {
	ctx := context.Background()
	perTenant := *secrets / max(*tenants, 1)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= *tenants {
					return
				}
				if err := tenant(ctx, fmt.Sprintf("tenant-%04d", i), i%10 == 0, perTenant); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	fmt.Printf("\ncreated %d tenant namespaces (every tenth with an inference credential) and %d unrelated Secrets of 1 KiB in %s\n",
		*tenants, perTenant**tenants, time.Since(start).Round(time.Second))
	for range b.N {
		// The figures come from serve as deployed; the heap profiles from a second run
		// with pprof on, whose finer heap sampling costs memory of its own.
		plain := memoryRun(b, false)
		profiled := memoryRun(b, true)
		fmt.Printf("serve idle (MiB): %s\n", plain.idle)
		fmt.Printf("serve after %d sandbox pod creates (8 at a time, both webhooks, %s) (MiB): %s\n", *loadFlag, plain.elapsed.Round(time.Millisecond), plain.loaded)
		fmt.Printf("serve peak RSS (VmHWM): %.1f MiB\n", mib(plain.peak))
		fmt.Printf("with pprof on (heap sampled every 4 KiB): idle %s; peak RSS %.1f MiB\n", profiled.idle, mib(profiled.peak))
		fmt.Printf("heap profile, idle (in use, after a GC):\n%s\n", profiled.idleTop)
		fmt.Printf("heap profile, after the load (in use, after a GC):\n%s\n", profiled.loadTop)
		b.ReportMetric(mib(plain.peak), "peak-RSS-MiB")
		b.ReportMetric(mib(plain.idleRSS), "idle-RSS-MiB")
	}
}

// memoryFigures are what one memoryRun saw.
type memoryFigures struct {
	idleRSS, peak    int64
	idle, loaded     string
	idleTop, loadTop string
	elapsed          time.Duration
}

// memoryRun starts serve, lets the tenancy reconciler make its first pass, then puts the
// load of sandbox pod creates through the API server with both webhooks. With profiled,
// it also saves heap profiles idle and after the load.
func memoryRun(b *testing.B, profiled bool) memoryFigures {
	ctx := context.Background()
	p := startServe(b, profiled)
	defer p.stop()
	var f memoryFigures
	time.Sleep(5 * time.Second) // the tenancy reconciler's first pass over every tenant
	f.idleRSS = p.status("VmRSS")
	f.idle = p.memory(b)
	if profiled {
		f.idleTop = p.heapProfile(b, "heap-idle.pprof")
	}
	install(b, p, nil, bothWebhooks, "tenant-0000")
	var done atomic.Int64
	var failed atomic.Value
	var lwg sync.WaitGroup
	loadStart := time.Now()
	for w := range 8 {
		lwg.Go(func() {
			for {
				i := int(done.Add(1)) - 1
				if i >= *loadFlag {
					return
				}
				ns := fmt.Sprintf("tenant-%04d", (i*7+w)%*tenants)
				if _, err := dryRunCreate(ctx, sandboxPod(ns, fmt.Sprintf("load-%d", i))); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	lwg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	f.elapsed = time.Since(loadStart)
	if profiled {
		f.loadTop = p.heapProfile(b, "heap-load.pprof")
	}
	f.loaded = p.memory(b)
	f.peak = p.status("VmHWM") // last: reading the metrics above costs memory too
	install(b, p, nil, noWebhook, "tenant-0000")
	return f
}

// tlsClient trusts ca.
func tlsClient(ca []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}, Timeout: 30 * time.Second}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
