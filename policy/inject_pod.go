package policy

import (
	corev1 "k8s.io/api/core/v1"
)

// InjectionPod is the part of a pod the injector reads. NewInjectionPod takes it from
// a decoded Pod; the webhook reads it straight from the pod's JSON, which spares it
// decoding the rest of the pod on every request.
type InjectionPod struct {
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string

	ServiceAccountName string
	// DeprecatedServiceAccount is spec.serviceAccount.
	DeprecatedServiceAccount string

	// Volumes need only their names, except those named like the token volume
	// (Config.Token.VolumeName), which need their whole source.
	Volumes        []corev1.Volume
	InitContainers []InjectionContainer
	Containers     []InjectionContainer
}

// InjectionContainer is the part of a container the injector reads.
type InjectionContainer struct {
	Name string
	Env  []InjectionEnvVar
	// VolumeMounts need only Name and MountPath, except those with the token volume's
	// name or mount path, which need every field.
	VolumeMounts    []corev1.VolumeMount
	ImagePullPolicy corev1.PullPolicy
	// EnvFrom are the container's envFrom sources, in order.
	EnvFrom []InjectionEnvFromSource
}

// InjectionEnvFromSource is one envFrom entry: its prefix and the ConfigMap or Secret it
// names (one of the two is set).
type InjectionEnvFromSource struct {
	Prefix        string
	ConfigMapName string
	SecretName    string
}

// InjectionEnvVar is an env var: its name, its literal value, and whether it takes its
// value from a source (valueFrom) instead.
type InjectionEnvVar struct {
	Name      string
	Value     string
	ValueFrom bool
}

// NewInjectionPod returns what the injector reads of pod. It shares pod's volumes and
// mounts; Inject never changes them.
func NewInjectionPod(pod *corev1.Pod) *InjectionPod {
	return &InjectionPod{
		Namespace:                pod.Namespace,
		Labels:                   pod.Labels,
		Annotations:              pod.Annotations,
		ServiceAccountName:       pod.Spec.ServiceAccountName,
		DeprecatedServiceAccount: pod.Spec.DeprecatedServiceAccount,
		Volumes:                  pod.Spec.Volumes,
		InitContainers:           injectionContainers(pod.Spec.InitContainers),
		Containers:               injectionContainers(pod.Spec.Containers),
	}
}

func injectionContainers(cs []corev1.Container) []InjectionContainer {
	if cs == nil {
		return nil
	}
	out := make([]InjectionContainer, len(cs))
	for i := range cs {
		c := &cs[i]
		out[i] = InjectionContainer{Name: c.Name, VolumeMounts: c.VolumeMounts, ImagePullPolicy: c.ImagePullPolicy}
		if c.Env != nil {
			env := make([]InjectionEnvVar, len(c.Env))
			for k, e := range c.Env {
				env[k] = InjectionEnvVar{Name: e.Name, Value: e.Value, ValueFrom: e.ValueFrom != nil}
			}
			out[i].Env = env
		}
		if c.EnvFrom != nil {
			from := make([]InjectionEnvFromSource, len(c.EnvFrom))
			for k, f := range c.EnvFrom {
				from[k].Prefix = f.Prefix
				if f.ConfigMapRef != nil {
					from[k].ConfigMapName = f.ConfigMapRef.Name
				}
				if f.SecretRef != nil {
					from[k].SecretName = f.SecretRef.Name
				}
			}
			out[i].EnvFrom = from
		}
	}
	return out
}
