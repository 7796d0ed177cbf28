package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

const sectionEndToEnd = "end to end"

// probeName names the dry-run pods; they are never stored.
const probeName = "sandbox-webhook-doctor-probe"

// endToEnd sends two dry-run pods through the API server's admission chain in the first
// tenant: a sandbox pod that must come back injected, and a pod with a freshly generated
// private key that must be refused without the key in the denial.
func (d *doctor) endToEnd(ctx context.Context, tenants []tenant) {
	d.section = sectionEndToEnd
	if len(tenants) == 0 {
		d.add(Skipped, "dry-run sandbox pod", "", "no tenant namespace to try it in")
		d.add(Skipped, "dry-run pod with a private key", "", "no tenant namespace to try it in")
		return
	}
	t := tenants[0]
	d.sandboxProbe(ctx, t)
	d.keyProbe(ctx, t.name)
}

func (d *doctor) sandboxProbe(ctx context.Context, t tenant) {
	cfg := d.cfg
	name := "dry-run sandbox pod"
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.name, Name: probeName, Labels: map[string]string{cfg.Sandboxes.SandboxLabel: "doctor"}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken: &no,
			Containers:                   []corev1.Container{{Name: "agent", Image: "sandbox-webhook-doctor-probe"}},
		},
	}
	rctx, cancel := d.timeout(ctx)
	defer cancel()
	if err := d.c.Create(rctx, pod, client.DryRunAll); err != nil {
		d.add(Failed, name, "a sandbox pod in "+t.name+" cannot be created: read the error; with failurePolicy Fail an unreachable webhook refuses every sandbox pod", "refused in %s: %v", t.name, err)
		return
	}
	raw := pod.Annotations[policy.AnnotationInjected]
	if raw == "" {
		d.add(Failed, name, "check the MutatingWebhookConfiguration's namespaceSelector and objectSelector against the tenant label and "+cfg.Sandboxes.SandboxLabel, "a dry-run sandbox pod in %s came back without annotation %s: the mutating webhook was not called", t.name, policy.AnnotationInjected)
		return
	}
	var summary policy.InjectionSummary
	_ = json.Unmarshal([]byte(raw), &summary)
	var missing []string
	audience := ""
	for _, v := range pod.Spec.Volumes {
		if v.Name == cfg.Token.VolumeName && v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					audience = s.ServiceAccountToken.Audience
				}
			}
		}
	}
	if audience != cfg.Token.Audience {
		missing = append(missing, fmt.Sprintf("projected token volume %s with audience %s", cfg.Token.VolumeName, cfg.Token.Audience))
	}
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	for _, k := range []string{cfg.Token.PathEnv, cfg.Gateway.EndpointEnv, cfg.Inference.Env} {
		if _, ok := env[k]; !ok {
			missing = append(missing, "env "+k)
		}
	}
	if len(missing) > 0 {
		d.add(Failed, name, "the webhook runs another config than doctor: pass the webhook's config with --config", "a dry-run sandbox pod in %s came back without %s", t.name, strings.Join(missing, ", "))
		return
	}
	want := fmt.Sprint(t.credential.Usable())
	if got := env[cfg.Inference.Env]; t.credential.State != policy.CredentialUnavailable && got != want {
		d.add(Warned, name, "the webhook's cache lags or it runs another config: run doctor again in a moment, or pass the webhook's config with --config",
			"injected in %s, but %s=%s (%s) where doctor classifies the credential %s", t.name, cfg.Inference.Env, got, summary.InferenceReason, t.credential.State)
		return
	}
	d.add(Passed, name, "", "injected in %s: token volume %s (audience %s), %s=%s, %s=%s (%s)", t.name,
		cfg.Token.VolumeName, audience, cfg.Gateway.EndpointEnv, env[cfg.Gateway.EndpointEnv], cfg.Inference.Env, env[cfg.Inference.Env], summary.InferenceReason)
}

func (d *doctor) keyProbe(ctx context.Context, ns string) {
	name := "dry-run pod with a private key"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		d.add(Failed, name, "retry", "generating a key: %v", err)
		return
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		d.add(Failed, name, "retry", "encoding the key: %v", err)
		return
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: probeName + "-key"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "sandbox-webhook-doctor-probe",
			Env: []corev1.EnvVar{{Name: "TLS_KEY", Value: keyPEM}},
		}}},
	}
	rctx, cancel := d.timeout(ctx)
	defer cancel()
	err = d.c.Create(rctx, pod, client.DryRunAll)
	switch {
	case err == nil:
		d.add(Failed, name, "check ValidatingWebhookConfiguration's rules and namespaceSelector, and the webhook's privateKeys.excludedNamespaces",
			"a dry-run pod in %s with a freshly generated EC key in env TLS_KEY was admitted: keys pasted into pods reach etcd", ns)
	case ContainsKeyMaterial(err.Error(), der):
		d.add(Failed, name, "report this: a denial must never quote the key", "the denial of a dry-run pod in %s contains part of the key (not printed)", ns)
	case apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		d.add(Passed, name, "", "a dry-run pod in %s with a freshly generated EC key in env TLS_KEY was refused without echoing it: %s", ns, denialReason(err))
	default:
		d.add(Failed, name, "read the error: the API server could not decide on the pod", "a dry-run pod in %s: %v", ns, err)
	}
}

// denialReason is the first sentence of the webhook's message in an admission denial,
// without the API server's preamble.
func denialReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "denied the request: "); i >= 0 {
		msg = msg[i+len("denied the request: "):]
	}
	// The first sentence names the field, the key kind and its fingerprint; the rest is
	// advice the operator has read before.
	if i := strings.Index(msg, ". "); i >= 0 {
		msg = msg[:i+1]
	}
	return msg
}

// ContainsKeyMaterial reports whether text holds any 16-character run of the key's PEM
// body (the base64 of der) or of its hex, or a PEM private key header.
func ContainsKeyMaterial(text string, der []byte) bool {
	body := strings.ReplaceAll(string(pem.EncodeToMemory(&pem.Block{Type: "K", Bytes: der})), "\n", "")
	body = strings.TrimSuffix(strings.TrimPrefix(body, "-----BEGIN K-----"), "-----END K-----")
	for _, s := range []string{body, fmt.Sprintf("%x", der)} {
		for i := 0; i+16 <= len(s); i++ {
			if strings.Contains(text, s[i:i+16]) {
				return true
			}
		}
	}
	return strings.Contains(text, "PRIVATE KEY-----")
}
