package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// InjectionOutcome says what the injector did with a pod.
type InjectionOutcome string

// The outcomes of Inject.
const (
	// OutcomeNotSandbox: the pod is not selected; it is left alone.
	OutcomeNotSandbox InjectionOutcome = "not-sandbox"
	// OutcomeNotTenant: the pod's namespace is excluded or not a tenant; it is left alone.
	OutcomeNotTenant InjectionOutcome = "not-tenant"
	// OutcomeInjected: the patch changes the pod.
	OutcomeInjected InjectionOutcome = "injected"
	// OutcomeUnchanged: the pod already has everything; the patch is empty.
	OutcomeUnchanged InjectionOutcome = "unchanged"
	// OutcomeDenied: the pod conflicts with what the webhook injects.
	OutcomeDenied InjectionOutcome = "denied"
)

// InjectionInput is everything the injector decides from.
type InjectionInput struct {
	Pod *InjectionPod
	// Namespace is the pod's namespace (the request's, for a pod that names none).
	Namespace string
	// NamespaceObject is the Namespace, for its labels. Nil means it is not known and
	// counts as a tenant (as in `check`); excluded namespaces are never tenants.
	NamespaceObject *corev1.Namespace
	Credential      InferenceCredential
}

// InjectionDecision is what the injector decided. Patch is a JSON patch (RFC 6902)
// against the pod as given; it is empty when nothing changes.
type InjectionDecision struct {
	Outcome  InjectionOutcome
	Patch    []jsonpatch.Operation
	Warnings []string
	// AuditAnnotations explain the non-obvious decisions to the audit log.
	AuditAnnotations map[string]string
	// Annotations are the annotations the pod carries afterwards.
	Annotations map[string]string
	// Denial says why the pod is refused; empty when it is not.
	Denial string
}

// InjectionSummary is the value of the sandbox-webhook.io/injected annotation: the
// state the injection established, without secrets. It depends only on the decision's
// inputs, so a second pass writes the same value.
type InjectionSummary struct {
	TokenVolume string   `json:"tokenVolume"`
	Containers  []string `json:"containers"`
	Gateway     string   `json:"gateway"`
	Inference   string   `json:"inference"`
	// InferenceReason is the credential state: usable, none, empty, ...
	InferenceReason string `json:"inferenceReason"`
	PullPolicy      string `json:"pullPolicy,omitempty"`
	// RemovedEnv and ReplacedEnv accumulate over passes.
	RemovedEnv  []string `json:"removedEnv,omitempty"`
	ReplacedEnv []string `json:"replacedEnv,omitempty"`
}

// IsSandboxPod reports whether pod is selected for injection: it carries the sandbox
// label or the inject label set to "true", and not the inject label set to "false".
func IsSandboxPod(pod *InjectionPod, cfg *Config) bool {
	l := pod.Labels
	if l[cfg.Sandboxes.InjectLabel] == "false" {
		return false
	}
	_, sandbox := l[cfg.Sandboxes.SandboxLabel]
	return sandbox || l[cfg.Sandboxes.InjectLabel] == "true"
}

// IsInjectedNamespace reports whether pods of this namespace may be injected; a nil
// Namespace object counts as a tenant unless the name is excluded.
func IsInjectedNamespace(name string, ns *corev1.Namespace, cfg *Config) bool {
	if ns == nil {
		return !cfg.IsExcludedNamespace(name)
	}
	return cfg.IsTenantNamespace(name, ns.Labels)
}

// Inject decides the injection for one pod. It never changes in.Pod.
func Inject(in InjectionInput, cfg *Config) InjectionDecision {
	pod := in.Pod
	if !IsSandboxPod(pod, cfg) {
		return InjectionDecision{Outcome: OutcomeNotSandbox}
	}
	if !IsInjectedNamespace(in.Namespace, in.NamespaceObject, cfg) {
		return InjectionDecision{Outcome: OutcomeNotTenant}
	}
	inj := injector{cfg: cfg, in: in}
	return inj.run()
}

type injector struct {
	cfg      *Config
	in       InjectionInput
	patch    []jsonpatch.Operation
	warnings []string
	denials  []string
	removed  []string
	replaced []string
	// envFrom names the envFrom sources that could supply a forbidden name.
	envFrom []string
}

func (j *injector) run() InjectionDecision {
	cfg, pod := j.cfg, j.in.Pod
	inference := "false"
	if j.in.Credential.Usable() {
		inference = "true"
	}
	gateway := cfg.GatewayEndpoint(j.in.Namespace)
	managed := []corev1.EnvVar{
		{Name: cfg.Token.PathEnv, Value: strings.TrimSuffix(cfg.Token.MountPath, "/") + "/" + cfg.Token.Path},
		{Name: cfg.Gateway.EndpointEnv, Value: gateway},
		{Name: cfg.Inference.Env, Value: inference},
	}

	j.volume(pod.Volumes)
	if pod.ServiceAccountName == "" {
		// A token projection needs a ServiceAccount. The API server's ServiceAccount
		// admission plugin normally sets it first; without that plugin, set the same.
		sa := pod.DeprecatedServiceAccount
		if sa == "" {
			sa = "default"
		}
		j.add("/spec/serviceAccountName", sa)
	}
	var mounted []string
	for i := range pod.InitContainers {
		c := &pod.InitContainers[i]
		path := "/spec/initContainers/" + strconv.Itoa(i)
		if j.selected(c.Name) {
			j.container(c, path, "initContainers", i, managed)
			mounted = append(mounted, "init:"+c.Name)
		}
		j.pullPolicy(c, path)
	}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		path := "/spec/containers/" + strconv.Itoa(i)
		if j.selected(c.Name) {
			j.container(c, path, "containers", i, managed)
			mounted = append(mounted, c.Name)
		}
		j.pullPolicy(c, path)
	}

	if len(j.denials) > 0 {
		return InjectionDecision{
			Outcome:          OutcomeDenied,
			Denial:           strings.Join(j.denials, "; "),
			AuditAnnotations: map[string]string{"outcome": string(OutcomeDenied)},
		}
	}

	if len(j.removed) > 0 {
		j.warnings = append(j.warnings, "removed env "+strings.Join(uniqueSorted(j.removed), ", ")+": they make the agent bypass the tenant's gateway")
	}
	if len(j.replaced) > 0 {
		j.warnings = append(j.warnings, "replaced the pod's own value of env "+strings.Join(uniqueSorted(j.replaced), ", ")+": the webhook manages them")
	}
	cred := j.in.Credential
	if cred.State != CredentialUsable && cred.State != CredentialNone && cred.State != "" {
		j.warnings = append(j.warnings, fmt.Sprintf("%s=%q: %s", cfg.Inference.Env, inference, cred.Detail))
	}

	summary := InjectionSummary{
		TokenVolume:     cfg.Token.VolumeName,
		Containers:      mounted,
		Gateway:         gateway,
		Inference:       inference,
		InferenceReason: string(cred.State),
		PullPolicy:      string(cfg.ImagePullPolicy),
		RemovedEnv:      j.removed,
		ReplacedEnv:     j.replaced,
	}
	if summary.InferenceReason == "" {
		summary.InferenceReason = string(CredentialNone)
	}
	if summary.Containers == nil {
		summary.Containers = []string{}
	}
	if prev := pod.Annotations[AnnotationInjected]; prev != "" {
		var previous InjectionSummary
		if json.Unmarshal([]byte(prev), &previous) == nil {
			summary.RemovedEnv = append(summary.RemovedEnv, previous.RemovedEnv...)
			summary.ReplacedEnv = append(summary.ReplacedEnv, previous.ReplacedEnv...)
		}
	}
	summary.RemovedEnv = uniqueSorted(summary.RemovedEnv)
	summary.ReplacedEnv = uniqueSorted(summary.ReplacedEnv)
	value, err := json.Marshal(summary)
	if err != nil { // a struct of strings always marshals
		value = []byte(`{}`)
	}
	if pod.Annotations[AnnotationInjected] != string(value) {
		if len(pod.Annotations) == 0 {
			j.add("/metadata/annotations", map[string]string{AnnotationInjected: string(value)})
		} else {
			j.add("/metadata/annotations/"+escapePointer(AnnotationInjected), string(value))
		}
	}

	audit := map[string]string{
		"inference":        inference,
		"inference-reason": summary.InferenceReason,
	}
	if len(j.removed) > 0 {
		audit["removed-env"] = strings.Join(uniqueSorted(j.removed), ",")
	}
	if len(j.replaced) > 0 {
		audit["replaced-env"] = strings.Join(uniqueSorted(j.replaced), ",")
	}
	if len(j.envFrom) > 0 {
		audit["forbidden-env-from"] = strings.Join(j.envFrom, ",")
	}
	outcome := OutcomeInjected
	if len(j.patch) == 0 {
		outcome = OutcomeUnchanged
	}
	audit["outcome"] = string(outcome)
	return InjectionDecision{
		Outcome:          outcome,
		Patch:            j.patch,
		Warnings:         j.warnings,
		AuditAnnotations: audit,
		Annotations:      map[string]string{AnnotationInjected: string(value)},
	}
}

func (j *injector) selected(name string) bool {
	return len(j.cfg.Sandboxes.Containers) == 0 || slices.Contains(j.cfg.Sandboxes.Containers, name)
}

func (j *injector) add(path string, value any) {
	j.patch = append(j.patch, jsonpatch.Operation{Operation: "add", Path: path, Value: value})
}

// TokenVolume is the projected ServiceAccount token volume the webhook adds.
func TokenVolume(cfg *Config) corev1.Volume {
	exp := cfg.Token.ExpirationSeconds
	return corev1.Volume{
		Name: cfg.Token.VolumeName,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          cfg.Token.Audience,
				ExpirationSeconds: &exp,
				Path:              cfg.Token.Path,
			}}},
		}},
	}
}

// isTokenVolume reports whether v has the content the webhook injects. defaultMode is
// the pod's own choice (the API server defaults it).
func isTokenVolume(v *corev1.Volume, cfg *Config) bool {
	p := v.Projected
	if p == nil || len(p.Sources) != 1 {
		return false
	}
	other := v.VolumeSource
	other.Projected = nil
	if other != (corev1.VolumeSource{}) {
		return false
	}
	s := p.Sources[0]
	t := s.ServiceAccountToken
	s.ServiceAccountToken = nil
	return t != nil && s == (corev1.VolumeProjection{}) &&
		t.Audience == cfg.Token.Audience && t.Path == cfg.Token.Path &&
		t.ExpirationSeconds != nil && *t.ExpirationSeconds == cfg.Token.ExpirationSeconds
}

func (j *injector) volume(volumes []corev1.Volume) {
	found := false
	for i := range volumes {
		if volumes[i].Name != j.cfg.Token.VolumeName {
			continue
		}
		found = true
		if !isTokenVolume(&volumes[i], j.cfg) {
			t := j.cfg.Token
			j.denials = append(j.denials, fmt.Sprintf("spec.volumes[%d] (name %q): the name is reserved for the gateway token, a projected serviceAccountToken with audience %q, expirationSeconds %d and path %q; rename the volume or remove it and let the webhook add it", i, t.VolumeName, t.Audience, t.ExpirationSeconds, t.Path))
		}
	}
	if found {
		return
	}
	if len(volumes) == 0 {
		j.add("/spec/volumes", []corev1.Volume{TokenVolume(j.cfg)})
	} else {
		j.add("/spec/volumes/-", TokenVolume(j.cfg))
	}
}

// container injects into c, container index of the pod's list (containers or
// initContainers) at path.
func (j *injector) container(c *InjectionContainer, path, list string, index int, managed []corev1.EnvVar) {
	t := j.cfg.Token
	mount := corev1.VolumeMount{Name: t.VolumeName, MountPath: t.MountPath, ReadOnly: true}
	found := false
	for k := range c.VolumeMounts {
		m := &c.VolumeMounts[k]
		if m.Name != t.VolumeName && m.MountPath != t.MountPath {
			continue
		}
		if !reflect.DeepEqual(*m, mount) {
			j.denials = append(j.denials, fmt.Sprintf("spec.%s[%d].volumeMounts[%d] (container %q, mount %q at %q): the gateway token is mounted read-only from volume %q at %q and nothing else may use that name or path; remove the mount and let the webhook add it", list, index, k, c.Name, m.Name, m.MountPath, t.VolumeName, t.MountPath))
		}
		found = true
	}
	if !found {
		if len(c.VolumeMounts) == 0 {
			j.add(path+"/volumeMounts", []corev1.VolumeMount{mount})
		} else {
			j.add(path+"/volumeMounts/-", mount)
		}
	}

	// Replaces address the original indices, so they go first; removals go from the
	// highest index down; appends go last.
	seen := make([]bool, len(managed))
	var removals []int
	for i := range c.Env {
		e := &c.Env[i]
		if slices.Contains(j.cfg.Gateway.ForbiddenEnv, e.Name) {
			removals = append(removals, i)
			j.removed = append(j.removed, e.Name)
			continue
		}
		k := slices.IndexFunc(managed, func(m corev1.EnvVar) bool { return m.Name == e.Name })
		if k < 0 {
			continue
		}
		if seen[k] {
			removals = append(removals, i)
			j.replaced = append(j.replaced, e.Name)
			continue
		}
		seen[k] = true
		if e.Value != managed[k].Value || e.ValueFrom {
			j.patch = append(j.patch, jsonpatch.Operation{Operation: "replace", Path: path + "/env/" + strconv.Itoa(i), Value: managed[k]})
			j.replaced = append(j.replaced, e.Name)
		}
	}
	for _, i := range slices.Backward(removals) {
		j.patch = append(j.patch, jsonpatch.Operation{Operation: "remove", Path: path + "/env/" + strconv.Itoa(i)})
	}
	j.checkEnvFrom(c, list, index)
	var missing []corev1.EnvVar
	for k, m := range managed {
		if !seen[k] {
			missing = append(missing, m)
		}
	}
	switch {
	case len(missing) == 0:
	case len(c.Env) == len(removals):
		// Empty, or emptied by the removals: set the whole list.
		j.add(path+"/env", missing)
	default:
		for _, m := range missing {
			j.add(path+"/env/-", m)
		}
	}
}

// checkEnvFrom warns about (or, with gateway.forbiddenEnvFrom Deny, refuses) every
// envFrom source of c that could supply a forbidden env name. The webhook sees only the
// source's name and prefix, not its keys: a source counts when a forbidden name starts
// with its prefix. Env set in env wins over envFrom, but the webhook removes forbidden
// names from env, so a source's value would reach the agent.
func (j *injector) checkEnvFrom(c *InjectionContainer, list string, index int) {
	for k, src := range c.EnvFrom {
		names := ForbiddenEnvFromSource(src, j.cfg)
		if len(names) == 0 {
			continue
		}
		kind, name := "ConfigMap", src.ConfigMapName
		if src.SecretName != "" {
			kind, name = "Secret", src.SecretName
		}
		prefix := "no prefix"
		if src.Prefix != "" {
			prefix = fmt.Sprintf("prefix %q", src.Prefix)
		}
		where := fmt.Sprintf("spec.%s[%d].envFrom[%d] (container %q, %s %q, %s)", list, index, k, c.Name, kind, name, prefix)
		may := fmt.Sprintf("may set %s, which make the agent bypass the tenant's gateway", strings.Join(names, ", "))
		fix := fmt.Sprintf("remove those keys from %s %s, or give the source a prefix that none of them starts with", kind, name)
		if j.cfg.Gateway.ForbiddenEnvFrom == EnvFromDeny {
			j.denials = append(j.denials, fmt.Sprintf("%s %s (gateway.forbiddenEnvFrom is Deny); %s", where, may, fix))
			continue
		}
		j.warnings = append(j.warnings, fmt.Sprintf("%s %s; the webhook cannot remove them from envFrom: %s", where, may, fix))
		j.envFrom = append(j.envFrom, fmt.Sprintf("%s:%s/%s", c.Name, kind, name))
	}
}

// ForbiddenEnvFromSource is the forbidden env names (gateway.forbiddenEnv) that src could
// supply: those that start with its prefix.
func ForbiddenEnvFromSource(src InjectionEnvFromSource, cfg *Config) []string {
	var names []string
	for _, n := range cfg.Gateway.ForbiddenEnv {
		if strings.HasPrefix(n, src.Prefix) {
			names = append(names, n)
		}
	}
	return names
}

func (j *injector) pullPolicy(c *InjectionContainer, path string) {
	want := j.cfg.ImagePullPolicy
	if want == "" || c.ImagePullPolicy == want {
		return
	}
	op := "replace"
	if c.ImagePullPolicy == "" {
		op = "add"
	}
	j.patch = append(j.patch, jsonpatch.Operation{Operation: op, Path: path + "/imagePullPolicy", Value: string(want)})
}

// escapePointer escapes one JSON pointer segment (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func uniqueSorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
