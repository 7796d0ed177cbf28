package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/webhook"
)

// admissionWait bounds the wait for the API server to call the new webhooks, which
// takes a moment.
const admissionWait = 30 * time.Second

// certManagerInjectAnnotation asks cert-manager to fill caBundle; nothing does in dev.
const certManagerInjectAnnotation = "cert-manager.io/inject-ca-from"

// devWebhookConfigurations points every webhook of the shipped configurations at base
// (https://host:port) with the CA bundle ca, each keeping its path, and drops the
// cert-manager CA injection annotation. It changes the objects it is given.
func devWebhookConfigurations(mutating []*admissionv1.MutatingWebhookConfiguration, validating []*admissionv1.ValidatingWebhookConfiguration, base string, ca []byte) ([]client.Object, error) {
	var objs []client.Object
	point := func(config, name string, cc *admissionv1.WebhookClientConfig) error {
		path, err := webhookPath(*cc)
		if err != nil {
			return fmt.Errorf("webhook %s of %s: %w", name, config, err)
		}
		u := base + path
		*cc = admissionv1.WebhookClientConfig{URL: &u, CABundle: ca}
		return nil
	}
	for _, m := range mutating {
		delete(m.Annotations, certManagerInjectAnnotation)
		for i := range m.Webhooks {
			if err := point("MutatingWebhookConfiguration "+m.Name, m.Webhooks[i].Name, &m.Webhooks[i].ClientConfig); err != nil {
				return nil, err
			}
		}
		objs = append(objs, m)
	}
	for _, v := range validating {
		delete(v.Annotations, certManagerInjectAnnotation)
		for i := range v.Webhooks {
			if err := point("ValidatingWebhookConfiguration "+v.Name, v.Webhooks[i].Name, &v.Webhooks[i].ClientConfig); err != nil {
				return nil, err
			}
		}
		objs = append(objs, v)
	}
	return objs, nil
}

// webhookPath is the HTTP path a client config calls: the service's path, or the URL's.
func webhookPath(cc admissionv1.WebhookClientConfig) (string, error) {
	switch {
	case cc.Service != nil && cc.Service.Path != nil && *cc.Service.Path != "":
		return *cc.Service.Path, nil
	case cc.URL != nil:
		u, err := url.Parse(*cc.URL)
		if err != nil {
			return "", err
		}
		if u.Path != "" {
			return u.Path, nil
		}
	}
	return "", errors.New("no path in clientConfig")
}

// describeWebhookConfiguration is "Kind name (N webhooks)".
func describeWebhookConfiguration(obj client.Object) string {
	kind, n := "", 0
	switch o := obj.(type) {
	case *admissionv1.MutatingWebhookConfiguration:
		kind, n = "MutatingWebhookConfiguration", len(o.Webhooks)
	case *admissionv1.ValidatingWebhookConfiguration:
		kind, n = "ValidatingWebhookConfiguration", len(o.Webhooks)
	default:
		kind = fmt.Sprintf("%T", obj)
	}
	plural := "s"
	if n == 1 {
		plural = ""
	}
	return fmt.Sprintf("%s %s (%d webhook%s)", kind, obj.GetName(), n, plural)
}

// waitForAdmission returns once the API server calls the webhooks. A configuration
// reaches the API server's admission chain a moment after it is created; until then
// requests pass unchecked. Dry-run requests probe it: a ConfigMap must reach the
// validating webhook, and a sandbox pod in tenant (when there is one) must come back
// injected, which also shows that the webhook's cache holds the tenant namespace.
func waitForAdmission(ctx context.Context, c client.Client, cfg *policy.Config, tenant string) error {
	before, err := webhookRequests(webhook.PathValidatePrivateKeys)
	if err != nil {
		return err
	}
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "sandbox-webhook-dev-probe"}}
	err = pollUntil(ctx, admissionWait, func() (bool, error) {
		if err := c.Create(ctx, probe.DeepCopy(), client.DryRunAll); err != nil {
			return false, err
		}
		after, err := webhookRequests(webhook.PathValidatePrivateKeys)
		return after > before, err
	})
	if err != nil {
		return fmt.Errorf("dev: the API server does not call %s: %w", webhook.PathValidatePrivateKeys, err)
	}
	if tenant == "" {
		return nil
	}
	err = pollUntil(ctx, admissionWait, func() (bool, error) {
		pod := probeSandboxPod(cfg, tenant)
		if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
			return false, err
		}
		return pod.Annotations[policy.AnnotationInjected] != "", nil
	})
	if err != nil {
		return fmt.Errorf("dev: a sandbox pod in %s does not come back injected (does tenants.namespaceSelector select it?): %w", tenant, err)
	}
	return nil
}

// probeSandboxPod is a minimal sandbox pod, for dry-run requests.
func probeSandboxPod(cfg *policy.Config, namespace string) *corev1.Pod {
	noToken := false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace,
			Name:      "sandbox-webhook-dev-probe",
			Labels:    map[string]string{cfg.Sandboxes.SandboxLabel: "probe"},
		},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: &noToken,
			Containers:                   []corev1.Container{{Name: "agent", Image: "probe"}},
		},
	}
}

// webhookRequests is how many admission requests this process's webhook server has
// answered on path, from controller-runtime's request counter.
func webhookRequests(path string) (float64, error) {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "webhook" && l.GetValue() == path {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total, nil
}

// pollUntil calls cond every 100ms until it returns true, ctx ends or bound passes;
// cond's last error explains a timeout.
func pollUntil(ctx context.Context, bound time.Duration, cond func() (bool, error)) error {
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			if last == nil {
				return fmt.Errorf("not within %s", bound)
			}
			return fmt.Errorf("not within %s: %w", bound, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
