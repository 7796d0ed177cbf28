package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/examples"
	"github.com/sandbox-webhook/sandbox-webhook/internal/doctor"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// demoWait bounds each wait of the demo; only a broken webhook or reconciler reaches it.
const demoWait = time.Minute

// demoObjects are the examples the demo applies.
type demoObjects struct {
	// tenants are the objects of examples.Tenants, in file order.
	tenants []client.Object
	pods    []*corev1.Pod
	keyPod  *corev1.Pod
	// credentials are the inference credential Secrets by namespace.
	credentials map[string][]*corev1.Secret
	// gateways are the gateway ServiceAccounts of the tenant namespaces.
	gateways []rbacv1.Subject
}

// loadDemoObjects decodes the embedded examples.
func loadDemoObjects(cfg *policy.Config) (*demoObjects, error) {
	d := &demoObjects{credentials: map[string][]*corev1.Secret{}}
	tenants, err := decodeExample(examples.Tenants)
	if err != nil {
		return nil, err
	}
	d.tenants = tenants
	tenantNamespaces := map[string]bool{}
	for _, obj := range tenants {
		if ns, ok := obj.(*corev1.Namespace); ok && cfg.IsTenantNamespace(ns.Name, ns.Labels) {
			tenantNamespaces[ns.Name] = true
		}
	}
	for _, obj := range tenants {
		switch o := obj.(type) {
		case *corev1.Secret:
			if _, ok := o.Labels[cfg.Inference.ProviderLabel]; ok {
				d.credentials[o.Namespace] = append(d.credentials[o.Namespace], o)
			}
		case *corev1.ServiceAccount:
			if o.Name == cfg.Tenancy.ServiceAccountName && tenantNamespaces[o.Namespace] {
				d.gateways = append(d.gateways, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: o.Namespace, Name: o.Name})
			}
		}
	}
	pods, err := decodeExample(examples.SandboxPods)
	if err != nil {
		return nil, err
	}
	for _, obj := range pods {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, fmt.Errorf("examples/%s: %s is not a Pod", examples.SandboxPods, obj.GetName())
		}
		d.pods = append(d.pods, pod)
	}
	keyPod, err := decodeExample(examples.PodWithKey)
	if err != nil {
		return nil, err
	}
	if len(keyPod) != 1 {
		return nil, fmt.Errorf("examples/%s: want one Pod, found %d objects", examples.PodWithKey, len(keyPod))
	}
	if d.keyPod, _ = keyPod[0].(*corev1.Pod); d.keyPod == nil {
		return nil, fmt.Errorf("examples/%s: not a Pod", examples.PodWithKey)
	}
	if len(d.gateways) == 0 {
		return nil, fmt.Errorf("demo: no namespace of examples/%s is a tenant (tenants.namespaceSelector %q) with a ServiceAccount %s", examples.Tenants, cfg.Tenants.NamespaceSelector, cfg.Tenancy.ServiceAccountName)
	}
	if len(d.pods) == 0 {
		return nil, fmt.Errorf("demo: examples/%s holds no pods", examples.SandboxPods)
	}
	return d, nil
}

// decodeExample decodes the objects of one example file.
func decodeExample(name string) ([]client.Object, error) {
	data, err := examples.Files.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var objs []client.Object
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("examples/%s: %w", name, err)
		}
		if len(bytes.TrimSpace(stripYAMLComments(doc))) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("examples/%s: %w", name, err)
		}
		co, ok := obj.(client.Object)
		if !ok {
			return nil, fmt.Errorf("examples/%s: %T is not an object", name, obj)
		}
		objs = append(objs, co)
	}
}

// runDemo applies the examples and prints what the webhook and the reconciler did.
func runDemo(ctx context.Context, c client.Client, cfg *policy.Config, d *demoObjects, out io.Writer) error {
	p := func(format string, args ...any) { fmt.Fprintf(out, "demo: "+format+"\n", args...) }

	var tenants, holders []string
	for _, g := range d.gateways {
		tenants = append(tenants, g.Namespace)
		if len(d.credentials[g.Namespace]) > 0 {
			holders = append(holders, g.Namespace)
		}
	}
	credentials := "none holds an inference credential"
	if len(holders) > 0 {
		credentials = strings.Join(holders, " and ") + " holds an inference credential"
	}
	p("applying examples/%s: %s, each with ServiceAccount %s; %s", examples.Tenants, strings.Join(tenants, " and "), cfg.Tenancy.ServiceAccountName, credentials)
	for _, obj := range d.tenants {
		obj = obj.DeepCopyObject().(client.Object)
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("demo: creating %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, client.ObjectKeyFromObject(obj), err)
		}
	}

	// The webhook answers from its cache, which sees new namespaces and Secrets a
	// moment after they are created: dry runs show when it has.
	for _, pod := range d.pods {
		wantInference := strconv.FormatBool(len(d.credentials[pod.Namespace]) > 0)
		var got string
		err := pollUntil(ctx, demoWait, func() (bool, error) {
			probe := pod.DeepCopy()
			if err := c.Create(ctx, probe, client.DryRunAll); err != nil {
				return false, err
			}
			got = podFacts(probe, cfg).inference
			return probe.Annotations[policy.AnnotationInjected] != "" && got == wantInference, nil
		})
		if err != nil {
			return fmt.Errorf("demo: sandbox pod %s/%s (dry run) does not come back injected with %s=%s (got %q): %w", pod.Namespace, pod.Name, cfg.Inference.Env, wantInference, got, err)
		}
	}

	p("applying examples/%s: sandbox pods %s", examples.SandboxPods, podNames(d.pods))
	var stored []*corev1.Pod
	for _, pod := range d.pods {
		if err := c.Create(ctx, pod.DeepCopy()); err != nil {
			return fmt.Errorf("demo: creating sandbox pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		got := &corev1.Pod{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
			return fmt.Errorf("demo: reading sandbox pod %s/%s back: %w", pod.Namespace, pod.Name, err)
		}
		stored = append(stored, got)
	}
	var facts []sandboxFacts
	for _, pod := range stored {
		f := podFacts(pod, cfg)
		f.credential = credentialText(d.credentials[pod.Namespace], cfg)
		if err := f.check(cfg, len(d.credentials[pod.Namespace]) > 0); err != nil {
			return fmt.Errorf("demo: sandbox pod %s: %w", f.pod, err)
		}
		facts = append(facts, f)
	}
	p("the sandbox pods as stored (read back from the API server):")
	for _, line := range columns(factsTable(facts, cfg)) {
		p("  %s", line)
	}

	if err := demoRefusedKey(ctx, c, d.keyPod, p); err != nil {
		return err
	}

	if !cfg.TenancyEnabled() {
		p("tenancy is off in the config: no ClusterRoleBinding to show")
		return nil
	}
	crb, err := waitForBindingSubjects(ctx, c, cfg.Tenancy.BindingName, d.gateways, demoWait)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	p("subjects of ClusterRoleBinding %s, as the tenancy reconciler keeps them:", crb.Name)
	var rows [][]string
	for _, s := range crb.Subjects {
		name := s.Name
		if s.Namespace != "" {
			name = s.Namespace + "/" + s.Name
		}
		rows = append(rows, []string{s.Kind, name})
	}
	for _, line := range columns(rows) {
		p("  %s", line)
	}
	if err := demoDoctor(ctx, c, cfg, out); err != nil {
		return err
	}
	p("done")
	return nil
}

// demoDoctor runs `sandbox-webhook doctor` against the dev cluster, as an operator
// would, and fails the demo when a check fails.
func demoDoctor(ctx context.Context, c client.Client, cfg *policy.Config, out io.Writer) error {
	fmt.Fprintln(out, "demo: sandbox-webhook doctor, against this cluster:")
	report, err := doctorReport(ctx, c, cfg, doctor.Options{}, false, &linePrefixWriter{prefix: "demo:   ", w: out})
	if err != nil {
		return fmt.Errorf("demo: doctor: %w", err)
	}
	if !report.OK {
		return fmt.Errorf("demo: doctor found %d failed check(s) in the dev cluster", report.Summary.Failed)
	}
	return nil
}

func podNames(pods []*corev1.Pod) string {
	var names []string
	for _, pod := range pods {
		names = append(names, pod.Namespace+"/"+pod.Name)
	}
	return strings.Join(names, " and ")
}

// demoRefusedKey tries the key-bearing example pod with a key made for the occasion and
// prints the denial. The key is never printed.
func demoRefusedKey(ctx context.Context, c client.Client, example *corev1.Pod, p func(string, ...any)) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	pod := example.DeepCopy()
	where := ""
	for i := range pod.Spec.Containers {
		for j, e := range pod.Spec.Containers[i].Env {
			if e.Value == examples.KeyPlaceholder {
				pod.Spec.Containers[i].Env[j].Value = keyPEM
				where = fmt.Sprintf("env %s of container %s", e.Name, pod.Spec.Containers[i].Name)
			}
		}
	}
	if where == "" {
		return fmt.Errorf("demo: examples/%s has no env value %s to put a key in", examples.PodWithKey, examples.KeyPlaceholder)
	}
	p("applying examples/%s with a freshly generated EC key in %s:", examples.PodWithKey, where)
	err = c.Create(ctx, pod)
	if err == nil {
		_ = c.Delete(ctx, pod)
		return fmt.Errorf("demo: pod %s/%s with a private key in %s was admitted; the validating webhook should refuse it", pod.Namespace, pod.Name, where)
	}
	if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
		return fmt.Errorf("demo: creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	msg := err.Error()
	if doctor.ContainsKeyMaterial(msg, der) {
		return errors.New("demo: the denial contains part of the key; not printing it")
	}
	p("  refused:")
	for _, line := range wrapWords(msg, 100) {
		p("    %s", line)
	}
	return nil
}

// waitForBindingSubjects waits until the binding lists every one of want.
func waitForBindingSubjects(ctx context.Context, c client.Client, name string, want []rbacv1.Subject, bound time.Duration) (*rbacv1.ClusterRoleBinding, error) {
	crb := &rbacv1.ClusterRoleBinding{}
	var missing []string
	err := pollUntil(ctx, bound, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, crb); err != nil {
			return false, err
		}
		missing = missing[:0]
		for _, w := range want {
			if !slices.ContainsFunc(crb.Subjects, func(s rbacv1.Subject) bool {
				return s.Kind == w.Kind && s.Namespace == w.Namespace && s.Name == w.Name
			}) {
				missing = append(missing, w.Namespace+"/"+w.Name)
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("ClusterRoleBinding %s does not list the gateways %v: %w", name, missing, err)
	}
	return crb, nil
}

// sandboxFacts are what the webhook injected into one sandbox pod, as text.
type sandboxFacts struct {
	pod, credential                     string
	tokenVolume, audience, expiration   string
	mount, tokenPath, endpoint          string
	inference, pullPolicy, pullPolicyBy string
	annotation                          string
	summary                             *policy.InjectionSummary
}

// agentContainer is the container the demo shows: "agent", else the first.
func agentContainer(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == "agent" {
			return &pod.Spec.Containers[i]
		}
	}
	if len(pod.Spec.Containers) == 0 {
		return &corev1.Container{}
	}
	return &pod.Spec.Containers[0]
}

// podFacts reads what the webhook injected from a stored pod; "-" stands for absent.
func podFacts(pod *corev1.Pod, cfg *policy.Config) sandboxFacts {
	const absent = "-"
	f := sandboxFacts{
		pod: pod.Namespace + "/" + pod.Name, credential: absent,
		tokenVolume: absent, audience: absent, expiration: absent, mount: absent,
		tokenPath: absent, endpoint: absent, inference: absent, pullPolicy: absent,
		annotation: absent,
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name != cfg.Token.VolumeName || v.Projected == nil {
			continue
		}
		f.tokenVolume = v.Name
		for _, src := range v.Projected.Sources {
			if t := src.ServiceAccountToken; t != nil {
				f.audience = t.Audience
				if t.ExpirationSeconds != nil {
					f.expiration = strconv.FormatInt(*t.ExpirationSeconds, 10) + "s"
				}
			}
		}
	}
	c := agentContainer(pod)
	for _, m := range c.VolumeMounts {
		if m.Name == cfg.Token.VolumeName {
			f.mount = m.MountPath + ", read-write"
			if m.ReadOnly {
				f.mount = m.MountPath + ", read-only"
			}
		}
	}
	for _, e := range c.Env {
		switch e.Name {
		case cfg.Token.PathEnv:
			f.tokenPath = e.Value
		case cfg.Gateway.EndpointEnv:
			f.endpoint = e.Value
		case cfg.Inference.Env:
			f.inference = e.Value
		}
	}
	if c.ImagePullPolicy != "" {
		f.pullPolicy = string(c.ImagePullPolicy)
	}
	f.pullPolicyBy = "the pod's own"
	if raw, ok := pod.Annotations[policy.AnnotationInjected]; ok {
		s := &policy.InjectionSummary{}
		if err := json.Unmarshal([]byte(raw), s); err != nil {
			f.annotation = "unreadable: " + err.Error()
		} else {
			f.summary = s
			f.annotation = fmt.Sprintf("inference %s (%s), containers %s", s.Inference, s.InferenceReason, strings.Join(s.Containers, ","))
			if s.PullPolicy != "" {
				f.pullPolicyBy = "set by the webhook"
			}
		}
	}
	return f
}

// credentialText names a namespace's inference credentials.
func credentialText(secrets []*corev1.Secret, cfg *policy.Config) string {
	if len(secrets) == 0 {
		return "none"
	}
	var names []string
	for _, s := range secrets {
		names = append(names, fmt.Sprintf("Secret %s (%s)", s.Name, s.Labels[cfg.Inference.ProviderLabel]))
	}
	return strings.Join(names, ", ")
}

// check says what is missing from an injected sandbox pod.
func (f sandboxFacts) check(cfg *policy.Config, hasCredential bool) error {
	var missing []string
	if f.summary == nil {
		missing = append(missing, "annotation "+policy.AnnotationInjected)
	}
	if f.tokenVolume == "-" || f.audience != cfg.Token.Audience {
		missing = append(missing, "projected token volume "+cfg.Token.VolumeName)
	}
	if f.mount == "-" {
		missing = append(missing, "token mount")
	}
	if f.tokenPath == "-" {
		missing = append(missing, "env "+cfg.Token.PathEnv)
	}
	if f.endpoint == "-" {
		missing = append(missing, "env "+cfg.Gateway.EndpointEnv)
	}
	if want := strconv.FormatBool(hasCredential); f.inference != want {
		missing = append(missing, fmt.Sprintf("env %s=%s (got %s)", cfg.Inference.Env, want, f.inference))
	}
	if len(missing) > 0 {
		return fmt.Errorf("not injected as expected: %s", strings.Join(missing, ", "))
	}
	return nil
}

// factsTable is the side-by-side table: a header of pod names, then one row per fact.
func factsTable(facts []sandboxFacts, cfg *policy.Config) [][]string {
	rows := [][]string{{""}}
	add := func(label string, value func(sandboxFacts) string) {
		row := []string{label}
		for _, f := range facts {
			row = append(row, value(f))
		}
		rows = append(rows, row)
	}
	for _, f := range facts {
		rows[0] = append(rows[0], f.pod)
	}
	add("inference credential", func(f sandboxFacts) string { return f.credential })
	add("token volume", func(f sandboxFacts) string { return f.tokenVolume })
	add("  audience, expiry", func(f sandboxFacts) string { return f.audience + ", " + f.expiration })
	add("  mount (agent)", func(f sandboxFacts) string { return f.mount })
	add(cfg.Token.PathEnv, func(f sandboxFacts) string { return f.tokenPath })
	add(cfg.Gateway.EndpointEnv, func(f sandboxFacts) string { return f.endpoint })
	add(cfg.Inference.Env, func(f sandboxFacts) string { return f.inference })
	add("imagePullPolicy (agent)", func(f sandboxFacts) string { return f.pullPolicy + " (" + f.pullPolicyBy + ")" })
	add(policy.AnnotationInjected, func(f sandboxFacts) string { return f.annotation })
	return rows
}
