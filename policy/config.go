package policy

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// ConfigAPIVersion and ConfigKind identify a sandbox-webhook config file.
const (
	ConfigAPIVersion = "sandbox-webhook.io/v1alpha1"
	ConfigKind       = "Config"
)

// Names that the webhook writes on objects. They are not configurable: tools and people
// look for them by these names.
const (
	// AnnotationInjected records on a sandbox pod what the mutating webhook did.
	AnnotationInjected = "sandbox-webhook.io/injected"
)

// minMemoryLimit is the least server.memoryLimit: below it no Go process serves.
var minMemoryLimit = resource.MustParse("16Mi")

// Config is everything sandbox-webhook enforces and how it serves. It is loaded and
// validated once at start and passed down explicitly; every field has a default.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	Server      ServerConfig     `json:"server"`
	Sandboxes   SandboxConfig    `json:"sandboxes"`
	Tenants     TenantConfig     `json:"tenants"`
	Token       TokenConfig      `json:"token"`
	Gateway     GatewayConfig    `json:"gateway"`
	Inference   InferenceConfig  `json:"inference"`
	PrivateKeys PrivateKeyConfig `json:"privateKeys"`
	Tenancy     TenancyConfig    `json:"tenancy"`
	// ImagePullPolicy is applied to every container and init container of a sandbox pod;
	// empty leaves each container's own policy.
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	tenantSelector labels.Selector
}

// ServerConfig is how the process serves: the webhook's TLS endpoint, metrics, probes
// and leader election for the tenancy reconciler.
type ServerConfig struct {
	// Namespace is the webhook's own namespace; pods there are never touched.
	Namespace string `json:"namespace"`
	// Port is the HTTPS port of the admission endpoints.
	Port int `json:"port"`
	// CertDir holds the serving certificate and key; they are reloaded when they change.
	CertDir  string `json:"certDir"`
	CertName string `json:"certName"`
	KeyName  string `json:"keyName"`
	// MetricsBindAddress serves Prometheus metrics; "0" turns metrics off.
	MetricsBindAddress string `json:"metricsBindAddress"`
	// HealthProbeBindAddress serves /healthz and /readyz; "0" turns them off.
	HealthProbeBindAddress string `json:"healthProbeBindAddress"`
	// PprofBindAddress serves Go's /debug/pprof (heap and CPU profiles) over plain HTTP;
	// "0", the default, turns it off. Bind it to loopback: profiles show memory contents.
	PprofBindAddress string `json:"pprofBindAddress"`
	// LeaderElection guards the tenancy reconciler; the webhook serves on every replica.
	LeaderElection          *bool           `json:"leaderElection,omitempty"`
	LeaderElectionID        string          `json:"leaderElectionID"`
	LeaderElectionNamespace string          `json:"leaderElectionNamespace"`
	LeaseDuration           metav1.Duration `json:"leaseDuration"`
	RenewDeadline           metav1.Duration `json:"renewDeadline"`
	RetryPeriod             metav1.Duration `json:"retryPeriod"`
	// ShutdownDelay is how long serve keeps answering after SIGTERM, with /readyz
	// failing, so the Service stops routing to it before it closes its listener.
	// 0 closes the listener at once.
	ShutdownDelay *metav1.Duration `json:"shutdownDelay,omitempty"`
	// GracefulShutdownTimeout bounds how long the requests in flight may take to finish
	// once the listener is closed.
	GracefulShutdownTimeout metav1.Duration `json:"gracefulShutdownTimeout"`
	// MaxReviewsInFlight bounds the admission reviews decided at once, so that a burst
	// of large or hostile requests queues instead of taking every core and the memory
	// with it. 0 means twice GOMAXPROCS (which follows the container's CPU limit).
	MaxReviewsInFlight int `json:"maxReviewsInFlight"`
	// ReviewQueueTimeout is how long a review waits for a turn before it is refused
	// with 429 Too Many Requests (never past the API server's own timeout).
	ReviewQueueTimeout metav1.Duration `json:"reviewQueueTimeout"`
	// MemoryLimit is the container's memory limit. serve gives the Go runtime
	// MemoryLimitRatio of it as its memory limit, so the garbage collector works harder
	// before the OOM killer acts. Unset: no limit from the config. The GOMEMLIMIT
	// environment variable, when set, takes precedence.
	MemoryLimit *resource.Quantity `json:"memoryLimit,omitempty"`
	// MemoryLimitRatio is the share of MemoryLimit that the Go runtime may use; the rest
	// is for memory the runtime does not count (the binary, thread stacks outside the
	// heap, what the kernel charges to the container).
	MemoryLimitRatio float64 `json:"memoryLimitRatio"`
}

// SandboxConfig says which pods are sandbox pods and which of their containers get the
// token mount.
type SandboxConfig struct {
	// SandboxLabel marks a pod made from a Sandbox; its presence selects the pod.
	SandboxLabel string `json:"sandboxLabel"`
	// InjectLabel set to "true" selects any pod; set to "false" it excludes a pod.
	InjectLabel string `json:"injectLabel"`
	// Containers names the containers that get the token mount and env; empty means all.
	Containers []string `json:"containers,omitempty"`
}

// TenantConfig says which namespaces are tenants.
type TenantConfig struct {
	// NamespaceSelector is a label selector in kubectl syntax.
	NamespaceSelector string `json:"namespaceSelector"`
	// ExcludedNamespaces are never touched, whatever their labels. kube-system,
	// kube-public, kube-node-lease and the webhook's own namespace are always excluded.
	ExcludedNamespaces []string `json:"excludedNamespaces,omitempty"`
}

// TokenConfig is the projected ServiceAccount token the gateway authenticates with.
type TokenConfig struct {
	VolumeName        string `json:"volumeName"`
	Audience          string `json:"audience"`
	ExpirationSeconds int64  `json:"expirationSeconds"`
	Path              string `json:"path"`
	MountPath         string `json:"mountPath"`
	PathEnv           string `json:"pathEnv"`
}

// GatewayConfig is where a sandbox finds its tenant's gateway.
type GatewayConfig struct {
	ServiceName   string `json:"serviceName"`
	Port          int    `json:"port"`
	ClusterDomain string `json:"clusterDomain"`
	EndpointEnv   string `json:"endpointEnv"`
	// ForbiddenEnv are env keys that make the agent bypass the gateway; they are removed.
	ForbiddenEnv []string `json:"forbiddenEnv"`
	// ForbiddenEnvFrom is what happens to a sandbox container whose envFrom source (a
	// ConfigMap or Secret, with its prefix) could supply a ForbiddenEnv name, which the
	// webhook cannot remove: Warn admits the pod with a warning naming the container and
	// the source, Deny refuses it.
	ForbiddenEnvFrom EnvFromAction `json:"forbiddenEnvFrom"`
}

// EnvFromAction is what the webhook does about an envFrom source that could supply a
// forbidden env name.
type EnvFromAction string

// The values of gateway.forbiddenEnvFrom.
const (
	EnvFromWarn EnvFromAction = "Warn"
	EnvFromDeny EnvFromAction = "Deny"
)

// InferenceConfig says how the inference flag is decided.
type InferenceConfig struct {
	Env string `json:"env"`
	// ProviderLabel on a Secret marks it as an inference credential; its value is the type.
	ProviderLabel string `json:"providerLabel"`
	// ProviderTypes are the inference-capable credential types.
	ProviderTypes []string `json:"providerTypes"`
	// LookupTimeout bounds the credential lookup; past it the flag is "false".
	LookupTimeout metav1.Duration `json:"lookupTimeout"`
}

// PrivateKeyConfig bounds and tunes private-key detection.
type PrivateKeyConfig struct {
	// AllowedFingerprints are SHA-256 fingerprints (as printed in denials) of keys that
	// are allowed anyway, such as a published test fixture. Never raw key material.
	AllowedFingerprints []string `json:"allowedFingerprints,omitempty"`
	// MaxObjectBytes: a larger object is denied, never allowed uninspected.
	MaxObjectBytes int `json:"maxObjectBytes"`
	// WorkPerByte bounds the work of inspecting an object: about WorkPerByte bytes
	// examined per byte of the object (plus a fixed allowance), candidates and findings
	// included. An object that needs more is denied, never allowed uninspected.
	WorkPerByte int `json:"workPerByte"`
	// MaxDecodeDepth caps nested decoding (base64 in base64, and so on).
	MaxDecodeDepth int `json:"maxDecodeDepth"`
	// ExcludedNamespaces are namespaces whose objects are not inspected for keys, on top
	// of kube-system, kube-public, kube-node-lease and the webhook's own namespace.
	// tenants.excludedNamespaces does not apply here: a namespace that is no tenant
	// still must not store keys in its pods.
	ExcludedNamespaces []string `json:"excludedNamespaces,omitempty"`
	// MaxCandidates is no longer read: WorkPerByte, which grows with the object,
	// replaced the fixed cap on candidates. It is accepted so that config files written
	// for earlier versions still load.
	MaxCandidates int `json:"maxCandidates,omitempty"`
}

// TenancyConfig is the shared ClusterRoleBinding that grants every tenant gateway
// TokenReview access.
type TenancyConfig struct {
	Enabled            *bool  `json:"enabled,omitempty"`
	BindingName        string `json:"bindingName"`
	ClusterRoleName    string `json:"clusterRoleName"`
	ServiceAccountName string `json:"serviceAccountName"`
	// RecreateOnRoleRefMismatch allows deleting and recreating a binding whose roleRef
	// differs (roleRef is immutable); otherwise the mismatch is only reported.
	RecreateOnRoleRefMismatch bool `json:"recreateOnRoleRefMismatch,omitempty"`
	// BatchDelay is how long the reconciler waits after the first event of a burst before
	// writing, so that a storm of namespace events becomes a handful of binding writes.
	BatchDelay metav1.Duration `json:"batchDelay"`
}

// alwaysExcludedNamespaces are never touched, whatever the config says.
var alwaysExcludedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

var validPullPolicies = []string{string(corev1.PullAlways), string(corev1.PullIfNotPresent), string(corev1.PullNever)}

// DefaultConfig returns a configuration with every field at its default.
func DefaultConfig() *Config {
	c := &Config{}
	c.Default()
	return c
}

// Default fills every unset field with its default.
func (c *Config) Default() {
	setStr := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *metav1.Duration, v time.Duration) {
		if p.Duration == 0 {
			p.Duration = v
		}
	}
	setBool := func(p **bool, v bool) {
		if *p == nil {
			*p = &v
		}
	}
	setStr(&c.APIVersion, ConfigAPIVersion)
	setStr(&c.Kind, ConfigKind)

	s := &c.Server
	setStr(&s.Namespace, "sandbox-webhook-system")
	setInt(&s.Port, 9443)
	setStr(&s.CertDir, "/var/run/sandbox-webhook/serving-certs")
	setStr(&s.CertName, "tls.crt")
	setStr(&s.KeyName, "tls.key")
	setStr(&s.MetricsBindAddress, ":8080")
	setStr(&s.HealthProbeBindAddress, ":8081")
	setStr(&s.PprofBindAddress, "0")
	setBool(&s.LeaderElection, true)
	setStr(&s.LeaderElectionID, "sandbox-webhook-tenancy")
	setStr(&s.LeaderElectionNamespace, s.Namespace)
	setDur(&s.LeaseDuration, 15*time.Second)
	setDur(&s.RenewDeadline, 10*time.Second)
	setDur(&s.RetryPeriod, 2*time.Second)
	if s.ShutdownDelay == nil {
		s.ShutdownDelay = &metav1.Duration{Duration: 5 * time.Second}
	}
	setDur(&s.GracefulShutdownTimeout, 30*time.Second)
	setDur(&s.ReviewQueueTimeout, 2*time.Second)
	if s.MemoryLimitRatio == 0 {
		s.MemoryLimitRatio = 0.9
	}

	setStr(&c.Sandboxes.SandboxLabel, "agents.x-k8s.io/sandbox-name-hash")
	setStr(&c.Sandboxes.InjectLabel, "sandbox-webhook.io/inject")

	setStr(&c.Tenants.NamespaceSelector, "sandbox-webhook.io/tenant=true")

	t := &c.Token
	setStr(&t.VolumeName, "openshell-sa-token")
	setStr(&t.Audience, "openshell-gateway")
	if t.ExpirationSeconds == 0 {
		t.ExpirationSeconds = 3600
	}
	setStr(&t.Path, "token")
	setStr(&t.MountPath, "/var/run/secrets/openshell")
	setStr(&t.PathEnv, "OPENSHELL_GATEWAY_SA_TOKEN_PATH")

	g := &c.Gateway
	setStr(&g.ServiceName, "openshell-gateway")
	setInt(&g.Port, 8080)
	setStr(&g.ClusterDomain, "cluster.local")
	setStr(&g.EndpointEnv, "OPENSHELL_GATEWAY_ENDPOINT")
	if g.ForbiddenEnv == nil {
		g.ForbiddenEnv = []string{"CLAUDE_CODE_USE_VERTEX", "USE_VERTEX", "ANTHROPIC_VERTEX_PROJECT_ID"}
	}
	if g.ForbiddenEnvFrom == "" {
		g.ForbiddenEnvFrom = EnvFromWarn
	}

	in := &c.Inference
	setStr(&in.Env, "ACP_OPENSHELL_INFERENCE")
	setStr(&in.ProviderLabel, "sandbox-webhook.io/inference-provider")
	if in.ProviderTypes == nil {
		in.ProviderTypes = []string{"anthropic", "claude", "google-vertex-ai", "openai", "nvidia", "aws-bedrock"}
	}
	setDur(&in.LookupTimeout, 200*time.Millisecond)

	k := &c.PrivateKeys
	setInt(&k.MaxObjectBytes, 3<<20)
	setInt(&k.WorkPerByte, defaultWorkPerByte)
	setInt(&k.MaxDecodeDepth, 4)

	tn := &c.Tenancy
	setBool(&tn.Enabled, true)
	setStr(&tn.BindingName, "openshell-gateway-node-reader")
	setStr(&tn.ClusterRoleName, "openshell-gateway-node-reader")
	setStr(&tn.ServiceAccountName, "openshell-gateway")
	setDur(&tn.BatchDelay, 250*time.Millisecond)
}

// Validate checks every field and returns all problems at once, each naming the field
// and what is allowed. A config must be defaulted first.
func (c *Config) Validate() error {
	var errs field.ErrorList
	at := func(parts ...string) *field.Path {
		return field.NewPath(parts[0], parts[1:]...)
	}
	if c.APIVersion != ConfigAPIVersion {
		errs = append(errs, field.NotSupported(at("apiVersion"), c.APIVersion, []string{ConfigAPIVersion}))
	}
	if c.Kind != ConfigKind {
		errs = append(errs, field.NotSupported(at("kind"), c.Kind, []string{ConfigKind}))
	}

	dns1123Label := func(p *field.Path, v string) {
		for _, msg := range validation.IsDNS1123Label(v) {
			errs = append(errs, field.Invalid(p, v, msg))
		}
	}
	dns1123Subdomain := func(p *field.Path, v string) {
		for _, msg := range validation.IsDNS1123Subdomain(v) {
			errs = append(errs, field.Invalid(p, v, msg))
		}
	}
	labelKey := func(p *field.Path, v string) {
		for _, msg := range validation.IsQualifiedName(v) {
			errs = append(errs, field.Invalid(p, v, msg))
		}
	}
	envName := func(p *field.Path, v string) {
		for _, msg := range validation.IsEnvVarName(v) {
			errs = append(errs, field.Invalid(p, v, msg))
		}
	}
	port := func(p *field.Path, v int) {
		if v < 1 || v > 65535 {
			errs = append(errs, field.Invalid(p, v, "must be a port number between 1 and 65535"))
		}
	}
	positive := func(p *field.Path, v time.Duration) {
		if v <= 0 {
			errs = append(errs, field.Invalid(p, v.String(), "must be a positive duration such as 200ms or 15s"))
		}
	}
	notEmpty := func(p *field.Path, v string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, field.Required(p, "must not be empty"))
		}
	}

	s := c.Server
	dns1123Label(at("server", "namespace"), s.Namespace)
	port(at("server", "port"), s.Port)
	notEmpty(at("server", "certDir"), s.CertDir)
	notEmpty(at("server", "certName"), s.CertName)
	notEmpty(at("server", "keyName"), s.KeyName)
	notEmpty(at("server", "metricsBindAddress"), s.MetricsBindAddress)
	notEmpty(at("server", "healthProbeBindAddress"), s.HealthProbeBindAddress)
	notEmpty(at("server", "pprofBindAddress"), s.PprofBindAddress)
	dns1123Subdomain(at("server", "leaderElectionID"), s.LeaderElectionID)
	dns1123Label(at("server", "leaderElectionNamespace"), s.LeaderElectionNamespace)
	positive(at("server", "leaseDuration"), s.LeaseDuration.Duration)
	positive(at("server", "renewDeadline"), s.RenewDeadline.Duration)
	positive(at("server", "retryPeriod"), s.RetryPeriod.Duration)
	if s.RenewDeadline.Duration >= s.LeaseDuration.Duration {
		errs = append(errs, field.Invalid(at("server", "renewDeadline"), s.RenewDeadline.Duration.String(), "must be shorter than server.leaseDuration"))
	}
	if s.RetryPeriod.Duration >= s.RenewDeadline.Duration {
		errs = append(errs, field.Invalid(at("server", "retryPeriod"), s.RetryPeriod.Duration.String(), "must be shorter than server.renewDeadline"))
	}
	if d := s.ShutdownDelay; d != nil && (d.Duration < 0 || d.Duration > 5*time.Minute) {
		errs = append(errs, field.Invalid(at("server", "shutdownDelay"), d.Duration.String(), "must be between 0s and 5m"))
	}
	if d := s.GracefulShutdownTimeout.Duration; d <= 0 || d > 10*time.Minute {
		errs = append(errs, field.Invalid(at("server", "gracefulShutdownTimeout"), d.String(), "must be a positive duration of at most 10m"))
	}
	if n := s.MaxReviewsInFlight; n < 0 || n > 10000 {
		errs = append(errs, field.Invalid(at("server", "maxReviewsInFlight"), n, "must be between 0 (twice GOMAXPROCS) and 10000"))
	}
	if d := s.ReviewQueueTimeout.Duration; d <= 0 || d > 30*time.Second {
		errs = append(errs, field.Invalid(at("server", "reviewQueueTimeout"), d.String(), "must be a positive duration of at most 30s"))
	}
	if q := s.MemoryLimit; q != nil && q.Cmp(minMemoryLimit) < 0 {
		errs = append(errs, field.Invalid(at("server", "memoryLimit"), q.String(), "must be at least "+minMemoryLimit.String()))
	}
	if r := s.MemoryLimitRatio; !(r > 0 && r <= 1) {
		errs = append(errs, field.Invalid(at("server", "memoryLimitRatio"), r, "must be more than 0 and at most 1"))
	}

	labelKey(at("sandboxes", "sandboxLabel"), c.Sandboxes.SandboxLabel)
	labelKey(at("sandboxes", "injectLabel"), c.Sandboxes.InjectLabel)
	for i, name := range c.Sandboxes.Containers {
		dns1123Label(at("sandboxes", "containers").Index(i), name)
	}

	sel, err := labels.Parse(c.Tenants.NamespaceSelector)
	if err != nil {
		errs = append(errs, field.Invalid(at("tenants", "namespaceSelector"), c.Tenants.NamespaceSelector, "must be a label selector such as sandbox-webhook.io/tenant=true: "+err.Error()))
	} else if sel.Empty() {
		errs = append(errs, field.Invalid(at("tenants", "namespaceSelector"), c.Tenants.NamespaceSelector, "must select something: an empty selector would make every namespace a tenant"))
	} else {
		c.tenantSelector = sel
	}
	for i, ns := range c.PrivateKeys.ExcludedNamespaces {
		dns1123Label(at("privateKeys", "excludedNamespaces").Index(i), ns)
	}
	for i, ns := range c.Tenants.ExcludedNamespaces {
		dns1123Label(at("tenants", "excludedNamespaces").Index(i), ns)
	}

	t := c.Token
	dns1123Label(at("token", "volumeName"), t.VolumeName)
	notEmpty(at("token", "audience"), t.Audience)
	if t.ExpirationSeconds < 600 || t.ExpirationSeconds > 86400 {
		errs = append(errs, field.Invalid(at("token", "expirationSeconds"), t.ExpirationSeconds, "must be between 600 and 86400 (10 minutes to 24 hours)"))
	}
	if t.Path == "" || strings.HasPrefix(t.Path, "/") || slices.Contains(strings.Split(t.Path, "/"), "..") {
		errs = append(errs, field.Invalid(at("token", "path"), t.Path, "must be a relative file path without '..'"))
	}
	if !strings.HasPrefix(t.MountPath, "/") || strings.Contains(t.MountPath, ":") {
		errs = append(errs, field.Invalid(at("token", "mountPath"), t.MountPath, "must be an absolute path without ':'"))
	}
	envName(at("token", "pathEnv"), t.PathEnv)

	g := c.Gateway
	dns1123Label(at("gateway", "serviceName"), g.ServiceName)
	port(at("gateway", "port"), g.Port)
	dns1123Subdomain(at("gateway", "clusterDomain"), g.ClusterDomain)
	envName(at("gateway", "endpointEnv"), g.EndpointEnv)
	for i, name := range g.ForbiddenEnv {
		envName(at("gateway", "forbiddenEnv").Index(i), name)
	}
	if g.ForbiddenEnvFrom != EnvFromWarn && g.ForbiddenEnvFrom != EnvFromDeny {
		errs = append(errs, field.NotSupported(at("gateway", "forbiddenEnvFrom"), g.ForbiddenEnvFrom, []string{string(EnvFromWarn), string(EnvFromDeny)}))
	}

	in := c.Inference
	envName(at("inference", "env"), in.Env)
	labelKey(at("inference", "providerLabel"), in.ProviderLabel)
	if len(in.ProviderTypes) == 0 {
		errs = append(errs, field.Required(at("inference", "providerTypes"), "must list at least one inference-capable credential type"))
	}
	for i, typ := range in.ProviderTypes {
		for _, msg := range validation.IsValidLabelValue(typ) {
			errs = append(errs, field.Invalid(at("inference", "providerTypes").Index(i), typ, msg))
		}
		if typ == "" {
			errs = append(errs, field.Required(at("inference", "providerTypes").Index(i), "must not be empty"))
		}
	}
	positive(at("inference", "lookupTimeout"), in.LookupTimeout.Duration)

	managed := map[string]string{"token.pathEnv": t.PathEnv, "gateway.endpointEnv": g.EndpointEnv, "inference.env": in.Env}
	for i, name := range g.ForbiddenEnv {
		for fieldName, v := range managed {
			if name == v {
				errs = append(errs, field.Invalid(at("gateway", "forbiddenEnv").Index(i), name, "must not name an env key the webhook sets ("+fieldName+")"))
			}
		}
	}
	if t.PathEnv == g.EndpointEnv || t.PathEnv == in.Env || g.EndpointEnv == in.Env {
		errs = append(errs, field.Invalid(at("token", "pathEnv"), t.PathEnv, "token.pathEnv, gateway.endpointEnv and inference.env must be three different names"))
	}

	if c.ImagePullPolicy != "" && !slices.Contains(validPullPolicies, string(c.ImagePullPolicy)) {
		errs = append(errs, field.NotSupported(at("imagePullPolicy"), c.ImagePullPolicy, append([]string{`"" (leave each container's own)`}, validPullPolicies...)))
	}

	k := c.PrivateKeys
	for i, fp := range k.AllowedFingerprints {
		if !IsFingerprint(fp) {
			errs = append(errs, field.Invalid(at("privateKeys", "allowedFingerprints").Index(i), "(not shown)", "must be a fingerprint as printed in a denial, SHA256: followed by 16 to 64 lowercase hex digits; never key material"))
		}
	}
	if k.MaxObjectBytes < 1024 || k.MaxObjectBytes > 64<<20 {
		errs = append(errs, field.Invalid(at("privateKeys", "maxObjectBytes"), k.MaxObjectBytes, "must be between 1024 and 67108864"))
	}
	if k.WorkPerByte < 4 || k.WorkPerByte > 1024 {
		errs = append(errs, field.Invalid(at("privateKeys", "workPerByte"), k.WorkPerByte, "must be between 4 and 1024"))
	}
	if k.MaxDecodeDepth < 1 || k.MaxDecodeDepth > 8 {
		errs = append(errs, field.Invalid(at("privateKeys", "maxDecodeDepth"), k.MaxDecodeDepth, "must be between 1 and 8"))
	}

	tn := c.Tenancy
	dns1123Subdomain(at("tenancy", "bindingName"), tn.BindingName)
	dns1123Subdomain(at("tenancy", "clusterRoleName"), tn.ClusterRoleName)
	dns1123Subdomain(at("tenancy", "serviceAccountName"), tn.ServiceAccountName)
	if tn.BatchDelay.Duration <= 0 || tn.BatchDelay.Duration > time.Minute {
		errs = append(errs, field.Invalid(at("tenancy", "batchDelay"), tn.BatchDelay.Duration.String(), "must be a positive duration of at most 1m, such as 250ms"))
	}

	if len(errs) > 0 {
		return fmt.Errorf("invalid config: %w", errs.ToAggregate())
	}
	return nil
}

// IsFingerprint reports whether s has the form of a key fingerprint as the detector
// prints it: "SHA256:" and 16 to 64 lowercase hex digits.
func IsFingerprint(s string) bool {
	hex, ok := strings.CutPrefix(s, "SHA256:")
	if !ok || len(hex) < 16 || len(hex) > 64 {
		return false
	}
	for _, r := range hex {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// LoadConfig reads a config file, fills defaults and validates it. An empty path gives
// the defaults.
func LoadConfig(path string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
	}
	return ParseConfig(data)
}

// ParseConfig parses a config document, rejecting unknown fields, fills defaults and
// validates it.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{}
	if len(strings.TrimSpace(string(data))) > 0 {
		if err := yaml.UnmarshalStrict(data, c); err != nil {
			return nil, fmt.Errorf("parsing config: %w", err)
		}
	}
	c.Default()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// TenantSelector is the parsed tenants.namespaceSelector. Validate parses it once; a
// config that was never validated parses it on each call (and never writes to c, so
// concurrent readers are safe).
func (c *Config) TenantSelector() labels.Selector {
	if c.tenantSelector != nil {
		return c.tenantSelector
	}
	sel, err := labels.Parse(c.Tenants.NamespaceSelector)
	if err != nil {
		return labels.Nothing()
	}
	return sel
}

// IsExcludedNamespace reports whether the webhook must never touch namespace ns.
func (c *Config) IsExcludedNamespace(ns string) bool {
	return ns == c.Server.Namespace || slices.Contains(alwaysExcludedNamespaces, ns) || slices.Contains(c.Tenants.ExcludedNamespaces, ns)
}

// IsKeyValidationExcluded reports whether objects of namespace ns are left out of the
// private-key check: the system namespaces, the webhook's own and
// privateKeys.excludedNamespaces, but not tenants.excludedNamespaces.
func (c *Config) IsKeyValidationExcluded(ns string) bool {
	return ns == c.Server.Namespace || slices.Contains(alwaysExcludedNamespaces, ns) || slices.Contains(c.PrivateKeys.ExcludedNamespaces, ns)
}

// IsTenantNamespace reports whether a namespace with these labels is a tenant.
func (c *Config) IsTenantNamespace(name string, nsLabels map[string]string) bool {
	return !c.IsExcludedNamespace(name) && c.TenantSelector().Matches(labels.Set(nsLabels))
}

// GatewayEndpoint is the gateway address of namespace ns.
func (c *Config) GatewayEndpoint(ns string) string {
	return fmt.Sprintf("%s.%s.svc.%s:%d", c.Gateway.ServiceName, ns, c.Gateway.ClusterDomain, c.Gateway.Port)
}

// LeaderElectionEnabled reports whether the tenancy reconciler runs under leader election.
func (c *Config) LeaderElectionEnabled() bool {
	return c.Server.LeaderElection == nil || *c.Server.LeaderElection
}

// TenancyEnabled reports whether the tenancy reconciler runs.
func (c *Config) TenancyEnabled() bool {
	return c.Tenancy.Enabled == nil || *c.Tenancy.Enabled
}
