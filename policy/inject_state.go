package policy

import (
	corev1 "k8s.io/api/core/v1"
)

// OfflineState stands for the cluster's state where there is no cluster, as in `check`:
// the Namespaces and Secrets given alongside the pods. A namespace without a Namespace
// object counts as a tenant.
type OfflineState struct {
	namespaces map[string]*corev1.Namespace
	secrets    map[string][]corev1.Secret
}

// AddNamespace records a Namespace and its labels.
func (s *OfflineState) AddNamespace(ns *corev1.Namespace) {
	if s.namespaces == nil {
		s.namespaces = map[string]*corev1.Namespace{}
	}
	s.namespaces[ns.Name] = ns
}

// AddSecret records a Secret of namespace PodNamespace(secret.Namespace).
func (s *OfflineState) AddSecret(secret *corev1.Secret) {
	if s.secrets == nil {
		s.secrets = map[string][]corev1.Secret{}
	}
	ns := objectNamespace(secret.Namespace)
	s.secrets[ns] = append(s.secrets[ns], *secret)
}

// Input is the injector's input for pod in this state.
func (s *OfflineState) Input(pod *corev1.Pod, cfg *Config) InjectionInput {
	ns := objectNamespace(pod.Namespace)
	return InjectionInput{
		Pod:             NewInjectionPod(pod),
		Namespace:       ns,
		NamespaceObject: s.namespaces[ns],
		Credential:      ClassifyInferenceCredentials(s.secrets[ns], cfg),
	}
}

// objectNamespace is the namespace an object without one is created in by default.
func objectNamespace(ns string) string {
	if ns == "" {
		return corev1.NamespaceDefault
	}
	return ns
}
