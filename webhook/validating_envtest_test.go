package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// envtestKey is a key generated for the test: its PEM, base64 body and fingerprint.
func envtestKey(t *testing.T) (pemText, body, fingerprint string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	text := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	sum := sha256.Sum256(der)
	return text, strings.Join(strings.Split(text, "\n")[1:3], ""), "SHA256:" + hex.EncodeToString(sum[:8])
}

// validatingTestNamespace is a namespace that is not a tenant, so that only the
// validating webhook is involved.
func validatingTestNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "validate-" + utilrand.String(6)}}
	if err := cp.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), ns) })
	return ns.Name
}

func agentPod(ns string, env ...corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-" + utilrand.String(5), Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "sidecar", Image: "busybox"},
			{Name: "agent", Image: "agent:1", Env: env},
		}},
	}
}

func assertNoKeyIn(t *testing.T, body, text string) {
	t.Helper()
	for i := 0; i+8 <= len(body); i++ {
		if strings.Contains(text, body[i:i+8]) {
			t.Fatalf("the API server's answer holds key material")
		}
	}
}

func TestValidatingWebhookRefusesPodWithKeyInEnvValue(t *testing.T) {
	ctx := context.Background()
	ns := validatingTestNamespace(t)
	keyPEM, body, fp := envtestKey(t)
	pod := agentPod(ns, corev1.EnvVar{Name: "MODE", Value: "x"}, corev1.EnvVar{Name: "TLS_KEY", Value: keyPEM})
	err := cp.Client.Create(ctx, pod)
	if !apierrors.IsForbidden(err) {
		t.Fatalf("want a Forbidden denial, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"private-keys.sandbox-webhook.io", "denied the request",
		"spec.containers[1].env[1].value", `container "agent"`, "env TLS_KEY",
		"EC private key (PKCS#8)", fp, "Secret", "secretKeyRef", "projected ServiceAccount token",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("denial %q lacks %q", msg, want)
		}
	}
	assertNoKeyIn(t, body, msg)
}

func TestValidatingWebhookAdmitsPodWithSecretKeyRef(t *testing.T) {
	ctx := context.Background()
	ns := validatingTestNamespace(t)
	pod := agentPod(ns, corev1.EnvVar{Name: "TLS_KEY", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "agent-tls"}, Key: "tls.key"},
	}})
	if err := cp.Client.Create(ctx, pod); err != nil {
		t.Fatalf("a pod that references its key through a Secret must be admitted: %v", err)
	}
}

func TestValidatingWebhookAdmitsSecretHoldingKey(t *testing.T) {
	ctx := context.Background()
	ns := validatingTestNamespace(t)
	keyPEM, _, _ := envtestKey(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-tls", Namespace: ns},
		StringData: map[string]string{"tls.key": keyPEM},
	}
	if err := cp.Client.Create(ctx, secret); err != nil {
		t.Fatalf("a Secret is where a key belongs: %v", err)
	}
}

func TestValidatingWebhookRefusesApplyThatAddsKey(t *testing.T) {
	ctx := context.Background()
	ns := validatingTestNamespace(t)
	keyPEM, body, fp := envtestKey(t)
	labels := map[string]string{"app": "agent"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "agent:1"}}},
			},
		},
	}
	if err := cp.Client.Create(ctx, dep); err != nil {
		t.Fatalf("clean Deployment: %v", err)
	}
	// What `kubectl apply` sends for an edited manifest: a patch of the live object.
	before := dep.DeepCopy()
	dep.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "SSH_KEY", Value: keyPEM}}
	err := cp.Client.Patch(ctx, dep, client.StrategicMergeFrom(before))
	if !apierrors.IsForbidden(err) {
		t.Fatalf("want a Forbidden denial of the update, got %v", err)
	}
	for _, want := range []string{"spec.template.spec.containers[0].env[0].value", "env SSH_KEY", fp} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("denial %q lacks %q", err.Error(), want)
		}
	}
	assertNoKeyIn(t, body, err.Error())

	// Server-side apply is refused the same way.
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "agent-config", Namespace: ns},
		Data:       map[string]string{"mode": "x"},
	}
	if err := cp.Client.Patch(ctx, cm, client.Apply, client.FieldOwner("kubectl"), client.ForceOwnership); err != nil {
		t.Fatalf("clean ConfigMap: %v", err)
	}
	cm.Data["id_ecdsa"] = keyPEM
	cm.ManagedFields = nil
	cm.ResourceVersion = ""
	if err := cp.Client.Patch(ctx, cm, client.Apply, client.FieldOwner("kubectl"), client.ForceOwnership); !apierrors.IsForbidden(err) {
		t.Fatalf("want a Forbidden denial of the apply, got %v", err)
	}
}
