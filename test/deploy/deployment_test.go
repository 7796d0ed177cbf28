package deploy

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

const restrictedUID = 65532

func TestTheDeploymentIsHighlyAvailableAndRestricted(t *testing.T) {
	replicas := map[string]int32{"base": 2, "overlays/cert-manager": 2, "overlays/kind": 2, "overlays/production": 3}
	for _, f := range folders {
		t.Run(f.dir, func(t *testing.T) {
			objs := build(t, f.dir)
			cfg := deployedConfig(t, objs)
			dep := deployment(t, objs)
			spec := dep.Spec.Template.Spec
			c := container(t, dep)

			if dep.Spec.Replicas == nil || *dep.Spec.Replicas != replicas[f.dir] {
				t.Errorf("replicas %v, want %d", dep.Spec.Replicas, replicas[f.dir])
			}
			if ru := dep.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
				t.Error("a rollout must not take a ready replica away before its successor is ready (maxUnavailable 0)")
			}
			var spread bool
			for _, tsc := range spec.TopologySpreadConstraints {
				sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
				if err != nil {
					t.Fatal(err)
				}
				spread = spread || (tsc.TopologyKey == corev1.LabelHostname && tsc.MaxSkew == 1 && sel.Matches(labels.Set(dep.Spec.Template.Labels)))
			}
			if !spread {
				t.Errorf("no topology spread of the webhook's pods over %s: %+v", corev1.LabelHostname, spec.TopologySpreadConstraints)
			}

			// The restricted Pod Security Standard, as the pod runs it (container settings
			// over the pod's).
			psc := spec.SecurityContext
			if psc == nil {
				t.Fatal("no pod securityContext")
			}
			csc := c.SecurityContext
			if csc == nil {
				t.Fatal("no container securityContext")
			}
			pick := func(cv, pv *int64) *int64 {
				if cv != nil {
					return cv
				}
				return pv
			}
			nonRoot := csc.RunAsNonRoot
			if nonRoot == nil {
				nonRoot = psc.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				t.Error("runAsNonRoot must be true")
			}
			if u := pick(csc.RunAsUser, psc.RunAsUser); u == nil || *u != restrictedUID {
				t.Errorf("runAsUser %v, want %d", u, restrictedUID)
			}
			if g := pick(csc.RunAsGroup, psc.RunAsGroup); g == nil || *g != restrictedUID {
				t.Errorf("runAsGroup %v, want %d", g, restrictedUID)
			}
			seccomp := csc.SeccompProfile
			if seccomp == nil {
				seccomp = psc.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("seccompProfile %+v, want RuntimeDefault", seccomp)
			}
			if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
				t.Error("allowPrivilegeEscalation must be false")
			}
			if csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" || len(csc.Capabilities.Add) != 0 {
				t.Errorf("capabilities %+v, want drop ALL and nothing added", csc.Capabilities)
			}
			if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
				t.Error("the root filesystem must be read-only")
			}
			if csc.Privileged != nil && *csc.Privileged {
				t.Error("privileged")
			}

			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
					t.Errorf("no %s request", r)
				}
			}
			if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.Cmp(c.Resources.Requests[corev1.ResourceMemory]) < 0 {
				t.Errorf("memory limit %v, want one at least the request", c.Resources.Limits)
			}

			checkMemoryLimit(t, c, cfg)

			// Probes on the health port the config serves them on.
			_, healthPort, err := net.SplitHostPort(cfg.Server.HealthProbeBindAddress)
			if err != nil {
				t.Fatal(err)
			}
			var health int32
			for _, p := range c.Ports {
				if p.Name == "health" {
					health = p.ContainerPort
				}
			}
			if strconv.Itoa(int(health)) != healthPort || health != 8081 {
				t.Errorf("container port health %d, the config serves probes on %s", health, cfg.Server.HealthProbeBindAddress)
			}
			for name, pr := range map[string]struct {
				probe *corev1.Probe
				path  string
			}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}} {
				if pr.probe == nil || pr.probe.HTTPGet == nil {
					t.Errorf("no HTTP %s probe", name)
					continue
				}
				g := pr.probe.HTTPGet
				if g.Path != pr.path || (g.Port != intstr.FromString("health") && g.Port != intstr.FromInt32(health)) {
					t.Errorf("%s probe %s on %s, want %s on the health port", name, g.Path, g.Port.String(), pr.path)
				}
			}

			// The kubelet must not kill a replica before its own ordered shutdown ends.
			grace := spec.TerminationGracePeriodSeconds
			need := cfg.Server.ShutdownDelay.Duration + cfg.Server.GracefulShutdownTimeout.Duration
			if grace == nil || time.Duration(*grace)*time.Second < need {
				t.Errorf("terminationGracePeriodSeconds %v, shorter than server.shutdownDelay + server.gracefulShutdownTimeout = %s", grace, need)
			}

			wantPull := corev1.PullPolicy("")
			if f.dir == "overlays/kind" {
				wantPull = corev1.PullIfNotPresent
			}
			if c.ImagePullPolicy != wantPull {
				t.Errorf("the webhook container's imagePullPolicy %q, want %q", c.ImagePullPolicy, wantPull)
			}
			checkDisruptionBudget(t, objs, dep)
			checkNetworkPolicy(t, objs, dep, cfg.Server.Port)
		})
	}
}

func checkDisruptionBudget(t *testing.T, objs []*unstructured.Unstructured, dep *appsv1.Deployment) {
	t.Helper()
	var pdb policyv1.PodDisruptionBudget
	find(t, objs, "PodDisruptionBudget", "sandbox-webhook", &pdb)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PodDisruptionBudget minAvailable %v maxUnavailable %v, want minAvailable 1", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
	}
	if pdb.Namespace != dep.Namespace {
		t.Errorf("PodDisruptionBudget in %s, the Deployment in %s", pdb.Namespace, dep.Namespace)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("PodDisruptionBudget selector %v does not select the webhook's pods (%v)", pdb.Spec.Selector, err)
	}
}

// checkNetworkPolicy: ingress to the webhook's pods is the webhook port only.
func checkNetworkPolicy(t *testing.T, objs []*unstructured.Unstructured, dep *appsv1.Deployment, port int) {
	t.Helper()
	var np networkingv1.NetworkPolicy
	find(t, objs, "NetworkPolicy", "sandbox-webhook", &np)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) || np.Namespace != dep.Namespace {
		t.Errorf("NetworkPolicy podSelector %v does not select the webhook's pods", np.Spec.PodSelector)
	}
	var ingress bool
	for _, pt := range np.Spec.PolicyTypes {
		ingress = ingress || pt == networkingv1.PolicyTypeIngress
	}
	if !ingress || len(np.Spec.Ingress) == 0 {
		t.Fatalf("NetworkPolicy does not restrict ingress: %+v", np.Spec)
	}
	for i, rule := range np.Spec.Ingress {
		if len(rule.Ports) != 1 {
			t.Errorf("ingress rule %d admits ports %v, want the webhook port only", i, rule.Ports)
			continue
		}
		p := rule.Ports[0]
		if p.Port == nil || p.Port.IntValue() != port || p.EndPort != nil || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
			t.Errorf("ingress rule %d admits %+v, want TCP %d (server.port)", i, p, port)
		}
	}
}

// checkMemoryLimit: serve gets the container's memory limit in bytes through the
// Downward API and --memory-limit, as the kubelet expands the argument.
func checkMemoryLimit(t *testing.T, c *corev1.Container, cfg *policy.Config) {
	t.Helper()
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		t.Fatal("no memory limit to give the Go runtime")
	}
	var flags []string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--memory-limit="); ok {
			flags = append(flags, v)
		}
	}
	if len(flags) != 1 {
		t.Fatalf("args %q, want one --memory-limit=$(VAR)", c.Args)
	}
	name, ok := strings.CutPrefix(flags[0], "$(")
	name, closed := strings.CutSuffix(name, ")")
	if !ok || !closed {
		t.Fatalf("--memory-limit=%s, want a $(VAR) that the kubelet expands", flags[0])
	}
	var ref *corev1.ResourceFieldSelector
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil {
			ref = e.ValueFrom.ResourceFieldRef
		}
	}
	if ref == nil {
		t.Fatalf("--memory-limit=$(%s), but env %s is not from a resourceFieldRef: %+v", name, name, c.Env)
	}
	if ref.Resource != "limits.memory" || (ref.ContainerName != "" && ref.ContainerName != c.Name) {
		t.Errorf("env %s is %s of container %q, want limits.memory of %s", name, ref.Resource, ref.ContainerName, c.Name)
	}
	divisor := int64(1)
	if !ref.Divisor.IsZero() {
		divisor = ref.Divisor.Value()
	}
	if divisor != 1 {
		t.Errorf("env %s divisor %s, want 1 (bytes)", name, ref.Divisor.String())
	}
	// What serve reads once the kubelet has expanded the argument.
	got, err := resource.ParseQuantity(strconv.FormatInt(limit.Value()/divisor, 10))
	if err != nil || got.Cmp(limit) != 0 {
		t.Errorf("--memory-limit expands to %s, the container's limit is %s (%v)", got.String(), limit.String(), err)
	}
	// The Go runtime's share still leaves room above what the container requests.
	goLimit := float64(limit.Value()) * cfg.Server.MemoryLimitRatio
	if request := c.Resources.Requests[corev1.ResourceMemory]; goLimit <= float64(request.Value()) {
		t.Errorf("Go memory limit %.0f bytes (server.memoryLimitRatio %v of %s) is not above the memory request %s", goLimit, cfg.Server.MemoryLimitRatio, limit.String(), request.String())
	}
}
