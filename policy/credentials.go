package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// CredentialState says whether a namespace holds a usable inference credential and, if
// not, why not.
type CredentialState string

// The states of a namespace's inference credentials.
const (
	// CredentialUsable: at least one labelled Secret holds a value usable for its type.
	CredentialUsable CredentialState = "usable"
	// CredentialNone: no Secret carries the provider label.
	CredentialNone CredentialState = "none"
	// CredentialUnknownType: labelled Secrets exist, but none names an inference-capable type.
	CredentialUnknownType CredentialState = "unknown-type"
	// CredentialEmpty: the Secret's values are all empty.
	CredentialEmpty CredentialState = "empty"
	// CredentialIncompatible: a Google credential of a type other than service_account,
	// such as an authorized_user file.
	CredentialIncompatible CredentialState = "incompatible"
	// CredentialUnparsable: a Google credential that is not JSON.
	CredentialUnparsable CredentialState = "unparsable"
	// CredentialUnavailable: the lookup could not be answered (cache not synced, API
	// error, timeout).
	CredentialUnavailable CredentialState = "unavailable"
)

// googleVertexAI is the provider type whose credential is a Google service-account key.
const googleVertexAI = "google-vertex-ai"

// InferenceCredential is the classification of a namespace's inference credentials. It
// names Secrets and types, never values.
type InferenceCredential struct {
	State CredentialState
	// Secret and Provider name the Secret that decided the state, when there is one.
	Secret   string
	Provider string
	// Detail says in a sentence why the state is what it is.
	Detail string
}

// Usable reports whether inference through the gateway can work.
func (c InferenceCredential) Usable() bool { return c.State == CredentialUsable }

// InferenceCredentialUnavailable is the state of a lookup that could not be answered.
func InferenceCredentialUnavailable(why string) InferenceCredential {
	return InferenceCredential{State: CredentialUnavailable, Detail: "the namespace's inference credentials could not be read: " + why}
}

// stateRank orders the reasons for "not usable": the most specific one is reported.
var stateRank = map[CredentialState]int{
	CredentialNone:         0,
	CredentialUnknownType:  1,
	CredentialEmpty:        2,
	CredentialUnparsable:   3,
	CredentialIncompatible: 4,
	CredentialUsable:       5,
}

// ClassifyInferenceCredentials decides from the Secrets of one namespace whether it holds
// a usable inference credential. Secrets without the provider label are ignored. The
// result is the same whatever the order of secrets.
func ClassifyInferenceCredentials(secrets []corev1.Secret, cfg *Config) InferenceCredential {
	best := InferenceCredential{State: CredentialNone, Detail: fmt.Sprintf("no Secret in the namespace has the label %s", cfg.Inference.ProviderLabel)}
	ordered := make([]*corev1.Secret, 0, len(secrets))
	for i := range secrets {
		if _, ok := secrets[i].Labels[cfg.Inference.ProviderLabel]; ok {
			ordered = append(ordered, &secrets[i])
		}
	}
	slices.SortFunc(ordered, func(a, b *corev1.Secret) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range ordered {
		c := classifySecret(s, cfg)
		if stateRank[c.State] > stateRank[best.State] {
			best = c
		}
		if best.Usable() {
			break
		}
	}
	return best
}

func classifySecret(s *corev1.Secret, cfg *Config) InferenceCredential {
	provider := s.Labels[cfg.Inference.ProviderLabel]
	c := InferenceCredential{Secret: s.Name, Provider: provider}
	if !slices.Contains(cfg.Inference.ProviderTypes, provider) {
		c.State = CredentialUnknownType
		c.Detail = fmt.Sprintf("Secret %q has provider type %q, which is not one of %s", s.Name, provider, strings.Join(cfg.Inference.ProviderTypes, ", "))
		return c
	}
	c.State = CredentialEmpty
	c.Detail = fmt.Sprintf("Secret %q (%s) holds no non-empty value", s.Name, provider)
	consider := func(value []byte) bool {
		v := bytes.TrimSpace(value)
		if len(v) == 0 {
			return false
		}
		if provider != googleVertexAI {
			c.State, c.Detail = CredentialUsable, fmt.Sprintf("Secret %q (%s) holds a non-empty credential", s.Name, provider)
			return true
		}
		state, detail := classifyGoogleCredential(v)
		if stateRank[state] > stateRank[c.State] {
			c.State, c.Detail = state, fmt.Sprintf("Secret %q (%s) %s", s.Name, provider, detail)
		}
		return state == CredentialUsable
	}
	for _, k := range sortedKeys(s.Data) {
		if consider(s.Data[k]) {
			return c
		}
	}
	// stringData only appears in objects that never went through the API server, such
	// as the inputs of `check`.
	for _, k := range sortedKeys(s.StringData) {
		if consider([]byte(s.StringData[k])) {
			return c
		}
	}
	return c
}

// googleCredential holds only what classification reads: the key itself is kept raw and
// only its length is looked at.
type googleCredential struct {
	Type        string          `json:"type"`
	ClientEmail string          `json:"client_email"`
	PrivateKey  json.RawMessage `json:"private_key"`
}

func classifyGoogleCredential(v []byte) (CredentialState, string) {
	var g googleCredential
	if err := json.Unmarshal(v, &g); err != nil {
		return CredentialUnparsable, "is not a Google credential JSON file"
	}
	switch {
	case g.Type == "service_account" && g.ClientEmail != "" && len(g.PrivateKey) > 2 && !bytes.Equal(g.PrivateKey, []byte("null")):
		return CredentialUsable, "holds a Google service_account key"
	case g.Type == "service_account":
		return CredentialEmpty, "holds a Google service_account file without client_email or private_key"
	case g.Type == "":
		return CredentialUnparsable, "is JSON without a Google credential type"
	default:
		return CredentialIncompatible, fmt.Sprintf("holds a Google %q credential; inference through the gateway needs a service_account key", g.Type)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
