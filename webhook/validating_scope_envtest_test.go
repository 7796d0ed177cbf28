package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// sandboxObject is a Sandbox CR with the given spec.
func sandboxObject(ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "agents.x-k8s.io/v1alpha1",
		"kind":       "Sandbox",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       spec,
	}}
	return u
}

func podSpecWith(keyPEM string) corev1.PodSpec {
	return corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, Containers: []corev1.Container{{
		Name: "agent", Image: "agent:1", Env: []corev1.EnvVar{{Name: "TLS_KEY", Value: keyPEM}},
	}}}
}

// scopeSamples is, for each resource of policy.KeyValidatedResources, a request that
// carries a key through it; each returns the API server's error.
func scopeSamples(ns, keyPEM string) map[string]func(ctx context.Context, t *testing.T) error {
	labels := map[string]string{"app": "agent"}
	selector := &metav1.LabelSelector{MatchLabels: labels}
	template := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpecWith(keyPEM)}
	jobTemplate := template
	jobTemplate.Spec.RestartPolicy = corev1.RestartPolicyNever
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	dryCreate := func(obj client.Object) func(ctx context.Context, t *testing.T) error {
		return func(ctx context.Context, t *testing.T) error {
			return cp.Client.Create(ctx, obj, client.DryRunAll)
		}
	}
	return map[string]func(ctx context.Context, t *testing.T) error{
		"/v1/pods": dryCreate(&corev1.Pod{ObjectMeta: meta("pod"), Spec: podSpecWith(keyPEM)}),
		"/v1/pods/ephemeralcontainers": func(ctx context.Context, t *testing.T) error {
			pod := agentPod(ns)
			if err := cp.Client.Create(ctx, pod); err != nil {
				t.Fatalf("clean pod: %v", err)
			}
			pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: "busybox", Env: []corev1.EnvVar{{Name: "TLS_KEY", Value: keyPEM}},
			}}}
			return cp.Client.SubResource("ephemeralcontainers").Update(ctx, pod)
		},
		"/v1/podtemplates": dryCreate(&corev1.PodTemplate{ObjectMeta: meta("tpl"), Template: template}),
		"/v1/replicationcontrollers": dryCreate(&corev1.ReplicationController{ObjectMeta: meta("rc"),
			Spec: corev1.ReplicationControllerSpec{Selector: labels, Template: &template}}),
		"/v1/configmaps": dryCreate(&corev1.ConfigMap{ObjectMeta: meta("cm"), Data: map[string]string{"tls.key": keyPEM}}),
		"agents.x-k8s.io/*/sandboxes": dryCreate(sandboxObject(ns, "sb", map[string]any{"podTemplate": map[string]any{
			"spec": map[string]any{"containers": []any{map[string]any{"name": "agent", "env": []any{map[string]any{"name": "TLS_KEY", "value": keyPEM}}}}},
		}})),
		"agents.x-k8s.io/*/sandboxes/status": func(ctx context.Context, t *testing.T) error {
			sb := sandboxObject(ns, "sb-"+utilrand.String(5), map[string]any{"replicas": int64(1)})
			if err := cp.Client.Create(ctx, sb); err != nil {
				t.Fatalf("clean Sandbox: %v", err)
			}
			sb.Object["status"] = map[string]any{"notes": keyPEM}
			return cp.Client.Status().Update(ctx, sb)
		},
		"apps/v1/deployments": dryCreate(&appsv1.Deployment{ObjectMeta: meta("dep"),
			Spec: appsv1.DeploymentSpec{Selector: selector, Template: template}}),
		"apps/v1/statefulsets": dryCreate(&appsv1.StatefulSet{ObjectMeta: meta("sts"),
			Spec: appsv1.StatefulSetSpec{Selector: selector, Template: template}}),
		"apps/v1/daemonsets": dryCreate(&appsv1.DaemonSet{ObjectMeta: meta("ds"),
			Spec: appsv1.DaemonSetSpec{Selector: selector, Template: template}}),
		"apps/v1/replicasets": dryCreate(&appsv1.ReplicaSet{ObjectMeta: meta("rs"),
			Spec: appsv1.ReplicaSetSpec{Selector: selector, Template: template}}),
		"batch/v1/jobs": dryCreate(&batchv1.Job{ObjectMeta: meta("job"),
			Spec: batchv1.JobSpec{Template: jobTemplate}}),
		"batch/v1/cronjobs": dryCreate(&batchv1.CronJob{ObjectMeta: meta("cron"),
			Spec: batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTemplate}}}}),
	}
}

// Every resource of the one list is refused a key through the real API server, and the
// test has a sample for each entry, so a resource added to the list is tested here too.
func TestValidatingWebhookRefusesKeyThroughEveryListedResource(t *testing.T) {
	ctx := context.Background()
	ns := validatingTestNamespace(t)
	keyPEM, body, fp := envtestKey(t)
	samples := scopeSamples(ns, keyPEM)
	for _, r := range policy.KeyValidatedResources {
		id := r.Group + "/" + r.Version + "/" + r.Resource
		t.Run(strings.ReplaceAll(id, "*", "any"), func(t *testing.T) {
			sample, ok := samples[id]
			if !ok {
				t.Fatalf("no sample request for %s", id)
			}
			err := sample(ctx, t)
			if !apierrors.IsForbidden(err) {
				t.Fatalf("a key through %s: want a Forbidden denial, got %v", id, err)
			}
			if !strings.Contains(err.Error(), fp) {
				t.Errorf("denial %q lacks the fingerprint %s", err.Error(), fp)
			}
			assertNoKeyIn(t, body, err.Error())
		})
	}
}

func TestValidatingWebhookAdmitsCleanSandboxStatus(t *testing.T) {
	ctx := context.Background()
	ns := validatingTestNamespace(t)
	sb := sandboxObject(ns, "clean", map[string]any{"replicas": int64(1)})
	if err := cp.Client.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	sb.Object["status"] = map[string]any{"phase": "Running", "serviceFQDN": "clean.example.svc"}
	if err := cp.Client.Status().Update(ctx, sb); err != nil {
		t.Fatalf("a clean status update must be admitted: %v", err)
	}
}

// preexistingLabel marks objects the validating webhook skips while
// withKeyValidationSkipping is in effect: the stand-in for an object stored before the
// webhook was installed.
const preexistingLabel = "sandbox-webhook.io/test-preexisting"

// withKeyValidationSkipping makes the validating webhook skip objects labelled
// preexistingLabel while fn runs, and waits until the API server has taken up each
// change (webhook configurations reach it through an informer).
func withKeyValidationSkipping(t *testing.T, ns, keyPEM string, fn func()) {
	t.Helper()
	ctx := context.Background()
	setSelector := func(sel *metav1.LabelSelector) {
		var vwc admissionregv1.ValidatingWebhookConfiguration
		if err := cp.Client.Get(ctx, types.NamespacedName{Name: "sandbox-webhook"}, &vwc); err != nil {
			t.Fatal(err)
		}
		for i := range vwc.Webhooks {
			vwc.Webhooks[i].ObjectSelector = sel
		}
		if err := cp.Client.Update(ctx, &vwc); err != nil {
			t.Fatal(err)
		}
	}
	// probe reports whether a labelled ConfigMap with a key is admitted now.
	probe := func() bool {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns, Labels: map[string]string{preexistingLabel: "true"}},
			Data:       map[string]string{"k": keyPEM},
		}
		return cp.Client.Create(ctx, cm, client.DryRunAll) == nil
	}
	waitFor := func(admitted bool) {
		for deadline := time.Now().Add(time.Minute); probe() != admitted; {
			if time.Now().After(deadline) {
				t.Fatalf("the API server did not take up the webhook configuration change (admitted=%v)", admitted)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	setSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: preexistingLabel, Operator: metav1.LabelSelectorOpDoesNotExist}}})
	restored := false
	restore := func() {
		if !restored {
			restored = true
			setSelector(&metav1.LabelSelector{})
			waitFor(false)
		}
	}
	defer restore()
	waitFor(true)
	fn()
	restore()
}

// An object that already held a key (stored before the webhook was installed) may keep
// it where it is, with a warning; the same key moved or copied to another field is
// refused, and so is one copied from a Sandbox's status into its spec.
func TestValidatingWebhookGrandfathersKeyOnlyAtItsField(t *testing.T) {
	ctx := context.Background()
	ns := validatingTestNamespace(t)
	keyPEM, body, fp := envtestKey(t)
	labels := map[string]string{preexistingLabel: "true"}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy", Namespace: ns, Labels: labels},
		Data:       map[string]string{"tls.key": keyPEM, "mode": "a"},
	}
	sb := sandboxObject(ns, "legacy", map[string]any{"replicas": int64(1)})
	sb.SetLabels(labels)
	withKeyValidationSkipping(t, ns, keyPEM, func() {
		if err := cp.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
		if err := cp.Client.Create(ctx, sb); err != nil {
			t.Fatal(err)
		}
		sb.Object["status"] = map[string]any{"notes": keyPEM}
		if err := cp.Client.Status().Update(ctx, sb); err != nil {
			t.Fatal(err)
		}
	})

	c, warnings := cp.WarningClient(t)

	// Same field, other data changed: admitted with a warning naming the field.
	cm.Data["mode"] = "b"
	if err := c.Update(ctx, cm); err != nil {
		t.Fatalf("an update that keeps the key where it was must be admitted: %v", err)
	}
	got := strings.Join(warnings.Take(), "\n")
	if !strings.Contains(got, "data[tls.key]") || !strings.Contains(got, "already held this private key") || !strings.Contains(got, fp) {
		t.Errorf("warnings %q do not name the grandfathered field and fingerprint", got)
	}
	assertNoKeyIn(t, body, got)

	// The same key copied to another field of the same object: refused, naming the new
	// field only.
	cm.Data["copy.key"] = keyPEM
	err := c.Update(ctx, cm)
	if !apierrors.IsForbidden(err) {
		t.Fatalf("a key copied to another field: want a Forbidden denial, got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "data[copy.key]") || !strings.Contains(msg, fp) {
		t.Errorf("denial %q does not name data[copy.key] and %s", msg, fp)
	}
	assertNoKeyIn(t, body, err.Error())

	// Moved: refused too.
	delete(cm.Data, "copy.key")
	delete(cm.Data, "tls.key")
	cm.Data["moved.key"] = keyPEM
	if err := c.Update(ctx, cm); !apierrors.IsForbidden(err) {
		t.Fatalf("a key moved to another field: want a Forbidden denial, got %v", err)
	}

	// The Sandbox that held a key in its status may not copy it into its spec.
	var live unstructured.Unstructured
	live.SetGroupVersionKind(sb.GroupVersionKind())
	if err := c.Get(ctx, client.ObjectKeyFromObject(sb), &live); err != nil {
		t.Fatal(err)
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"notes": keyPEM}})
	err = c.Patch(ctx, &live, client.RawPatch(types.MergePatchType, patch))
	if !apierrors.IsForbidden(err) {
		t.Fatalf("a key copied from status into spec: want a Forbidden denial, got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "spec.notes") {
		t.Errorf("denial %q does not name spec.notes", msg)
	}
	assertNoKeyIn(t, body, err.Error())
}
