package policy

// KeyValidatedResource is a resource, or a subresource, whose objects the validating
// webhook inspects for private keys. manifests/base/webhooks.yaml lists the same (a test
// holds it to this list), and `check` inspects the kinds named here and no others, so
// that the two give the same answer on every object.
type KeyValidatedResource struct {
	Group    string
	Version  string // "*": every version
	Resource string // "pods", or a subresource such as "pods/ephemeralcontainers"
	Kind     string
}

// KeyValidatedResources are every channel through which the objects that carry a
// sandbox's spec reach the cluster: pods and every workload or template that makes them,
// ConfigMaps, and Sandbox CRs with their status (the CRD keeps unknown fields there).
// Secrets are never among them: a Secret is where a key belongs.
var KeyValidatedResources = []KeyValidatedResource{
	{"", "v1", "pods", "Pod"},
	{"", "v1", "pods/ephemeralcontainers", "Pod"},
	{"", "v1", "podtemplates", "PodTemplate"},
	{"", "v1", "replicationcontrollers", "ReplicationController"},
	{"", "v1", "configmaps", "ConfigMap"},
	{"agents.x-k8s.io", "*", "sandboxes", "Sandbox"},
	{"agents.x-k8s.io", "*", "sandboxes/status", "Sandbox"},
	{"apps", "v1", "deployments", "Deployment"},
	{"apps", "v1", "statefulsets", "StatefulSet"},
	{"apps", "v1", "daemonsets", "DaemonSet"},
	{"apps", "v1", "replicasets", "ReplicaSet"},
	{"batch", "v1", "jobs", "Job"},
	{"batch", "v1", "cronjobs", "CronJob"},
}

// IsKeyValidatedKind reports whether objects of this API group and kind are inspected
// for private keys.
func IsKeyValidatedKind(group, kind string) bool {
	for _, r := range KeyValidatedResources {
		if r.Group == group && r.Kind == kind {
			return true
		}
	}
	return false
}
