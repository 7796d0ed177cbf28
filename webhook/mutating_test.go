package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// stubReader answers the handler's two lookups from memory, or blocks until the
// context ends when hang is set (a cache that cannot answer).
type stubReader struct {
	namespaces map[string]*corev1.Namespace
	secrets    []corev1.Secret
	hang       bool
}

func (r *stubReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return fmt.Errorf("unexpected Get of %T", obj)
	}
	found, ok := r.namespaces[key.Name]
	if !ok {
		return newNotFound(key.Name)
	}
	*ns = *found
	return nil
}

func (r *stubReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if r.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	sl, ok := list.(*corev1.SecretList)
	if !ok {
		return fmt.Errorf("unexpected List of %T", list)
	}
	var lo client.ListOptions
	lo.ApplyOptions(opts)
	sl.Items = sl.Items[:0]
	for _, s := range r.secrets {
		if s.Namespace == lo.Namespace {
			sl.Items = append(sl.Items, s)
		}
	}
	return nil
}

func newNotFound(name string) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, name)
}

func tenantNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"sandbox-webhook.io/tenant": "true"}}}
}

func newTestInjector(t testing.TB, cfg *policy.Config, r client.Reader) *SandboxPodInjector {
	t.Helper()
	h, err := NewSandboxPodInjector(cfg, r, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func podRequest(t testing.TB, pod *corev1.Pod) admission.Request {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: pod.Namespace,
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

func patchedEnv(t *testing.T, resp admission.Response, name string) string {
	t.Helper()
	for _, op := range resp.Patches {
		if e, ok := op.Value.(corev1.EnvVar); ok && e.Name == name {
			return e.Value
		}
	}
	t.Fatalf("no env %s in the patch: %+v", name, resp.Patches)
	return ""
}

func TestSandboxPodInjectorAdmitsWithFalseWhenCredentialLookupTimesOut(t *testing.T) {
	cfg := policy.DefaultConfig()
	cfg.Inference.LookupTimeout = metav1.Duration{Duration: 20 * time.Millisecond}
	h := newTestInjector(t, cfg, &stubReader{namespaces: map[string]*corev1.Namespace{"team-a": tenantNamespace("team-a")}, hang: true})
	resp := h.Handle(context.Background(), podRequest(t, openShellSandboxPod("team-a", "s")))
	if !resp.Allowed {
		t.Fatalf("denied: %+v", resp.Result)
	}
	if got := patchedEnv(t, resp, cfg.Inference.Env); got != "false" {
		t.Errorf("inference = %q, want false", got)
	}
	if !strings.Contains(strings.Join(resp.Warnings, "\n"), "could not be read") {
		t.Errorf("no warning about the lookup: %q", resp.Warnings)
	}
	if resp.AuditAnnotations["inference-reason"] != string(policy.CredentialUnavailable) {
		t.Errorf("audit annotations: %v", resp.AuditAnnotations)
	}
}

func TestSandboxPodInjectorRechecksNamespaceAndSelection(t *testing.T) {
	cfg := policy.DefaultConfig()
	r := &stubReader{namespaces: map[string]*corev1.Namespace{
		"team-a": tenantNamespace("team-a"),
		"plain":  {ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
	}}
	h := newTestInjector(t, cfg, r)
	web := openShellSandboxPod("team-a", "web")
	web.Labels = map[string]string{"app": "web"}
	system := openShellSandboxPod(cfg.Server.Namespace, "s")
	for name, pod := range map[string]*corev1.Pod{
		"non-tenant namespace":    openShellSandboxPod("plain", "s"),
		"missing namespace":       openShellSandboxPod("gone", "s"),
		"webhook's own namespace": system,
		"non-sandbox pod":         web,
	} {
		resp := h.Handle(context.Background(), podRequest(t, pod))
		if !resp.Allowed || len(resp.Patches) != 0 || len(resp.Warnings) != 0 {
			t.Errorf("%s: want allowed untouched, got allowed=%v patches=%v warnings=%v", name, resp.Allowed, resp.Patches, resp.Warnings)
		}
	}
	resp := h.Handle(context.Background(), podRequest(t, openShellSandboxPod("team-a", "s")))
	if !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("tenant sandbox pod not injected: %+v", resp)
	}
}

func TestSandboxPodInjectorDeniesConflictingVolumeNamingTheField(t *testing.T) {
	cfg := policy.DefaultConfig()
	h := newTestInjector(t, cfg, &stubReader{namespaces: map[string]*corev1.Namespace{"team-a": tenantNamespace("team-a")}})
	pod := openShellSandboxPod("team-a", "s")
	pod.Spec.Volumes = []corev1.Volume{{Name: cfg.Token.VolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	resp := h.Handle(context.Background(), podRequest(t, pod))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "spec.volumes[0]") {
		t.Fatalf("want a denial naming spec.volumes[0], got allowed=%v %+v", resp.Allowed, resp.Result)
	}
}

// countingReader counts the Gets it answers.
type countingReader struct {
	stubReader
	gets int
	err  error
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.gets++
	if r.err != nil {
		return r.err
	}
	return r.stubReader.Get(ctx, key, obj, opts...)
}

func TestSandboxPodInjectorReadsANamespaceTheCacheHasNotSeenFromTheAPIServer(t *testing.T) {
	cfg := policy.DefaultConfig()
	cache := &stubReader{namespaces: map[string]*corev1.Namespace{"old": tenantNamespace("old")}}
	live := &countingReader{stubReader: stubReader{namespaces: map[string]*corev1.Namespace{"old": tenantNamespace("old"), "new": tenantNamespace("new")}}}
	h := newTestInjector(t, cfg, cache)
	h.ReadNamespacesLive(live)

	resp := h.Handle(context.Background(), podRequest(t, openShellSandboxPod("new", "s")))
	if !resp.Allowed || len(resp.Patches) == 0 {
		t.Fatalf("a sandbox pod in a tenant namespace the cache has not seen yet was not injected: %+v", resp.Result)
	}
	if live.gets != 1 {
		t.Errorf("live reads = %d, want 1", live.gets)
	}
	resp = h.Handle(context.Background(), podRequest(t, openShellSandboxPod("old", "s")))
	if !resp.Allowed || len(resp.Patches) == 0 || live.gets != 1 {
		t.Errorf("a namespace in the cache must not be read live: injected %v, live reads %d", len(resp.Patches) > 0, live.gets)
	}
	resp = h.Handle(context.Background(), podRequest(t, openShellSandboxPod("nowhere", "s")))
	if !resp.Allowed || len(resp.Patches) != 0 {
		t.Errorf("a namespace that exists nowhere: allowed %v, %d patches", resp.Allowed, len(resp.Patches))
	}

	live.err = fmt.Errorf("connection refused")
	resp = h.Handle(context.Background(), podRequest(t, openShellSandboxPod("new", "s")))
	if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, "reading namespace new") {
		t.Errorf("a failed live read must be an error, never a silent skip: %+v", resp.Result)
	}
}
