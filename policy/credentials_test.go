package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func objectMeta(ns, name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}
}

func TestClassifyInferenceCredentialsReportsTheMostSpecificReason(t *testing.T) {
	cfg := DefaultConfig()
	label := cfg.Inference.ProviderLabel
	secret := func(name, provider string, data map[string]string) corev1.Secret {
		s := corev1.Secret{ObjectMeta: objectMeta("t", name, map[string]string{label: provider}), Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	const sa = `{"type":"service_account","client_email":"a@b.iam.gserviceaccount.com","private_key":"placeholder-value-x"}`
	const au = `{"type":"authorized_user","refresh_token":"placeholder-value-y"}`
	tests := []struct {
		name    string
		secrets []corev1.Secret
		want    CredentialState
	}{
		{"no secrets", nil, CredentialNone},
		{"unlabelled secrets are ignored", []corev1.Secret{{ObjectMeta: objectMeta("t", "x", nil), Data: map[string][]byte{"k": []byte("v")}}}, CredentialNone},
		{"unknown provider type", []corev1.Secret{secret("a", "github", map[string]string{"k": "v"})}, CredentialUnknownType},
		{"api key type with an empty value", []corev1.Secret{secret("a", "anthropic", map[string]string{"k": " \n"})}, CredentialEmpty},
		{"api key type with a value", []corev1.Secret{secret("a", "claude", map[string]string{"e": "", "k": "v"})}, CredentialUsable},
		{"vertex service account", []corev1.Secret{secret("a", "google-vertex-ai", map[string]string{"c.json": sa})}, CredentialUsable},
		{"vertex authorized_user", []corev1.Secret{secret("a", "google-vertex-ai", map[string]string{"c.json": au})}, CredentialIncompatible},
		{"vertex not json", []corev1.Secret{secret("a", "google-vertex-ai", map[string]string{"c.json": "placeholder"})}, CredentialUnparsable},
		{"vertex service account without key", []corev1.Secret{secret("a", "google-vertex-ai", map[string]string{"c.json": `{"type":"service_account","client_email":"a@b","private_key":""}`})}, CredentialEmpty},
		{"vertex null key", []corev1.Secret{secret("a", "google-vertex-ai", map[string]string{"c.json": `{"type":"service_account","client_email":"a@b","private_key":null}`})}, CredentialEmpty},
		{"one usable among unusable", []corev1.Secret{secret("a", "google-vertex-ai", map[string]string{"c.json": au}), secret("b", "github", map[string]string{"k": "v"}), secret("c", "openai", map[string]string{"k": "v"})}, CredentialUsable},
		{"incompatible beats unknown type", []corev1.Secret{secret("z", "github", map[string]string{"k": "v"}), secret("a", "google-vertex-ai", map[string]string{"c.json": au})}, CredentialIncompatible},
		{"stringData counts", []corev1.Secret{{ObjectMeta: objectMeta("t", "s", map[string]string{label: "nvidia"}), StringData: map[string]string{"k": "v"}}}, CredentialUsable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ClassifyInferenceCredentials(tt.secrets, cfg)
			if got.State != tt.want {
				t.Fatalf("state %s (%s), want %s", got.State, got.Detail, tt.want)
			}
			if got.Detail == "" {
				t.Fatal("no detail")
			}
			for _, s := range tt.secrets {
				for _, v := range s.Data {
					if len(v) > 3 && strings.Contains(got.Detail, string(v)) {
						t.Fatalf("detail %q contains a secret value", got.Detail)
					}
				}
			}
		})
	}
}

func TestClassifyInferenceCredentialsIgnoresOrder(t *testing.T) {
	cfg := DefaultConfig()
	l := map[string]string{cfg.Inference.ProviderLabel: "google-vertex-ai"}
	a := corev1.Secret{ObjectMeta: objectMeta("t", "a", l), Data: map[string][]byte{"k": []byte("x")}}
	b := corev1.Secret{ObjectMeta: objectMeta("t", "b", l), Data: map[string][]byte{"k": []byte(`{"type":"authorized_user"}`)}}
	one := ClassifyInferenceCredentials([]corev1.Secret{a, b}, cfg)
	two := ClassifyInferenceCredentials([]corev1.Secret{b, a}, cfg)
	if one != two {
		t.Fatalf("order matters: %+v vs %+v", one, two)
	}
}
