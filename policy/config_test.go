package policy

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfigEmptyGivesDesignDefaults(t *testing.T) {
	c, err := ParseConfig(nil)
	if err != nil {
		t.Fatalf("defaults must be valid: %v", err)
	}
	checks := map[string][2]any{
		"token.volumeName":         {c.Token.VolumeName, "openshell-sa-token"},
		"token.audience":           {c.Token.Audience, "openshell-gateway"},
		"token.expirationSeconds":  {c.Token.ExpirationSeconds, int64(3600)},
		"token.mountPath":          {c.Token.MountPath, "/var/run/secrets/openshell"},
		"token.pathEnv":            {c.Token.PathEnv, "OPENSHELL_GATEWAY_SA_TOKEN_PATH"},
		"gateway endpoint":         {c.GatewayEndpoint("tenant-a"), "openshell-gateway.tenant-a.svc.cluster.local:8080"},
		"inference.env":            {c.Inference.Env, "ACP_OPENSHELL_INFERENCE"},
		"imagePullPolicy":          {string(c.ImagePullPolicy), ""},
		"tenancy.bindingName":      {c.Tenancy.BindingName, "openshell-gateway-node-reader"},
		"leader election":          {c.LeaderElectionEnabled(), true},
		"gateway.forbiddenEnvFrom": {c.Gateway.ForbiddenEnvFrom, EnvFromWarn},
		"server.memoryLimit":       {c.Server.MemoryLimit == nil, true},
		"server.memoryLimitRatio":  {c.Server.MemoryLimitRatio, 0.9},
	}
	for name, got := range checks {
		if got[0] != got[1] {
			t.Errorf("%s = %v, want %v", name, got[0], got[1])
		}
	}
	if !c.IsTenantNamespace("tenant-a", map[string]string{"sandbox-webhook.io/tenant": "true"}) {
		t.Error("a namespace labelled sandbox-webhook.io/tenant=true must be a tenant")
	}
	for _, ns := range []string{"kube-system", "kube-public", "kube-node-lease", "sandbox-webhook-system"} {
		if c.IsTenantNamespace(ns, map[string]string{"sandbox-webhook.io/tenant": "true"}) {
			t.Errorf("%s must never be a tenant", ns)
		}
	}
}

func TestParseConfigOverridesKeepOtherDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`
apiVersion: sandbox-webhook.io/v1alpha1
kind: Config
imagePullPolicy: IfNotPresent
token:
  expirationSeconds: 7200
gateway:
  clusterDomain: corp.example
  port: 9090
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ImagePullPolicy != "IfNotPresent" || c.Token.ExpirationSeconds != 7200 || c.Token.Audience != "openshell-gateway" {
		t.Errorf("overrides not applied or defaults lost: %+v %+v", c.ImagePullPolicy, c.Token)
	}
	if got := c.GatewayEndpoint("t1"); got != "openshell-gateway.t1.svc.corp.example:9090" {
		t.Errorf("endpoint = %s", got)
	}
}

func TestParseConfigRejects(t *testing.T) {
	const head = "apiVersion: sandbox-webhook.io/v1alpha1\nkind: Config\n"
	cases := []struct {
		name string
		yaml string
		want []string // every substring must appear in the error
	}{
		{"unknown top-level field", head + "tokens: {}\n", []string{`unknown field "tokens"`}},
		{"unknown nested field", head + "token:\n  expiry: 5\n", []string{`unknown field "expiry"`}},
		{"wrong apiVersion", "apiVersion: v1\nkind: Config\n", []string{"apiVersion", "sandbox-webhook.io/v1alpha1"}},
		{"wrong kind", "apiVersion: sandbox-webhook.io/v1alpha1\nkind: Pod\n", []string{"kind", `"Config"`}},
		{"expiration too short", head + "token:\n  expirationSeconds: 599\n", []string{"token.expirationSeconds", "between 600 and 86400"}},
		{"expiration too long", head + "token:\n  expirationSeconds: 86401\n", []string{"token.expirationSeconds", "between 600 and 86400"}},
		{"bad pull policy", head + "imagePullPolicy: Sometimes\n", []string{"imagePullPolicy", "Always", "IfNotPresent", "Never"}},
		{"unparsable selector", head + "tenants:\n  namespaceSelector: 'a=(b'\n", []string{"tenants.namespaceSelector", "label selector"}},
		{"empty audience", head + "token:\n  audience: '  '\n", []string{"token.audience", "must not be empty"}},
		{"relative mount path", head + "token:\n  mountPath: var/run\n", []string{"token.mountPath", "absolute"}},
		{"token path escapes", head + "token:\n  path: ../token\n", []string{"token.path", "relative"}},
		{"absolute token path", head + "token:\n  path: /token\n", []string{"token.path"}},
		{"volume name not DNS-1123", head + "token:\n  volumeName: Bad_Name\n", []string{"token.volumeName", "RFC 1123"}},
		{"service name not DNS-1123", head + "gateway:\n  serviceName: gate.way\n", []string{"gateway.serviceName", "must not contain dots"}},
		{"cluster domain invalid", head + "gateway:\n  clusterDomain: 'Cluster_Local'\n", []string{"gateway.clusterDomain"}},
		{"gateway port out of range", head + "gateway:\n  port: 70000\n", []string{"gateway.port", "between 1 and 65535"}},
		{"server port out of range", head + "server:\n  port: -1\n", []string{"server.port"}},
		{"own namespace invalid", head + "server:\n  namespace: Web.Hook\n", []string{"server.namespace"}},
		{"env name invalid", head + "inference:\n  env: 'ACP OPENSHELL'\n", []string{"inference.env", "environment variable name"}},
		{"forbidden env names a managed key", head + "gateway:\n  forbiddenEnv: [ACP_OPENSHELL_INFERENCE]\n", []string{"gateway.forbiddenEnv[0]", "inference.env"}},
		{"managed env names collide", head + "inference:\n  env: OPENSHELL_GATEWAY_ENDPOINT\n", []string{"three different names"}},
		{"provider types empty", head + "inference:\n  providerTypes: []\n", []string{"inference.providerTypes", "at least one"}},
		{"provider label invalid", head + "inference:\n  providerLabel: 'not a label'\n", []string{"inference.providerLabel"}},
		{"lookup timeout negative", head + "inference:\n  lookupTimeout: -1s\n", []string{"inference.lookupTimeout", "positive"}},
		{"sandbox label invalid", head + "sandboxes:\n  sandboxLabel: 'a b'\n", []string{"sandboxes.sandboxLabel"}},
		{"container name invalid", head + "sandboxes:\n  containers: [Agent]\n", []string{"sandboxes.containers[0]"}},
		{"excluded namespace invalid", head + "tenants:\n  excludedNamespaces: ['-x']\n", []string{"tenants.excludedNamespaces[0]"}},
		{"fingerprint is raw material", head + "privateKeys:\n  allowedFingerprints: ['MIIEvQIBADANBgkqhkiG9w0BAQEFAASC']\n", []string{"privateKeys.allowedFingerprints[0]", "never key material"}},
		{"decode depth out of range", head + "privateKeys:\n  maxDecodeDepth: 20\n", []string{"privateKeys.maxDecodeDepth", "between 1 and 8"}},
		{"work per byte out of range", head + "privateKeys:\n  workPerByte: 2\n", []string{"privateKeys.workPerByte", "between 4 and 1024"}},
		{"object bound too small", head + "privateKeys:\n  maxObjectBytes: 10\n", []string{"privateKeys.maxObjectBytes"}},
		{"binding name invalid", head + "tenancy:\n  bindingName: 'Bad Name'\n", []string{"tenancy.bindingName"}},
		{"batch delay negative", head + "tenancy:\n  batchDelay: -1s\n", []string{"tenancy.batchDelay", "positive"}},
		{"batch delay too long", head + "tenancy:\n  batchDelay: 2m\n", []string{"tenancy.batchDelay", "at most 1m"}},
		{"renew deadline not below lease", head + "server:\n  leaseDuration: 5s\n  renewDeadline: 6s\n", []string{"server.renewDeadline", "shorter than server.leaseDuration"}},
		{"cert dir empty", head + "server:\n  certDir: ' '\n", []string{"server.certDir", "must not be empty"}},
		{"cert name empty", head + "server:\n  certName: ' '\n", []string{"server.certName"}},
		{"key name empty", head + "server:\n  keyName: ' '\n", []string{"server.keyName"}},
		{"metrics address empty", head + "server:\n  metricsBindAddress: ' '\n", []string{"server.metricsBindAddress"}},
		{"health address empty", head + "server:\n  healthProbeBindAddress: ' '\n", []string{"server.healthProbeBindAddress"}},
		{"leader election id invalid", head + "server:\n  leaderElectionID: 'Not_Valid'\n", []string{"server.leaderElectionID"}},
		{"leader election namespace invalid", head + "server:\n  leaderElectionNamespace: 'a.b'\n", []string{"server.leaderElectionNamespace"}},
		{"lease duration negative", head + "server:\n  leaseDuration: -15s\n", []string{"server.leaseDuration", "positive"}},
		{"shutdown delay negative", head + "server:\n  shutdownDelay: -1s\n", []string{"server.shutdownDelay", "between 0s and 5m"}},
		{"shutdown delay too long", head + "server:\n  shutdownDelay: 6m\n", []string{"server.shutdownDelay", "between 0s and 5m"}},
		{"graceful shutdown timeout negative", head + "server:\n  gracefulShutdownTimeout: -1s\n", []string{"server.gracefulShutdownTimeout", "at most 10m"}},
		{"graceful shutdown timeout too long", head + "server:\n  gracefulShutdownTimeout: 11m\n", []string{"server.gracefulShutdownTimeout", "at most 10m"}},
		{"key validation excluded namespace invalid", head + "privateKeys:\n  excludedNamespaces: ['Not_A_Name']\n", []string{"privateKeys.excludedNamespaces[0]"}},
		{"reviews in flight negative", head + "server:\n  maxReviewsInFlight: -1\n", []string{"server.maxReviewsInFlight", "between 0"}},
		{"reviews in flight too many", head + "server:\n  maxReviewsInFlight: 10001\n", []string{"server.maxReviewsInFlight", "10000"}},
		{"review queue timeout negative", head + "server:\n  reviewQueueTimeout: -1s\n", []string{"server.reviewQueueTimeout", "at most 30s"}},
		{"review queue timeout too long", head + "server:\n  reviewQueueTimeout: 31s\n", []string{"server.reviewQueueTimeout", "at most 30s"}},
		{"memory limit too small", head + "server:\n  memoryLimit: 1Mi\n", []string{"server.memoryLimit", "at least 16Mi"}},
		{"memory limit negative", head + "server:\n  memoryLimit: -256Mi\n", []string{"server.memoryLimit", "at least 16Mi"}},
		{"memory limit not a quantity", head + "server:\n  memoryLimit: lots\n", []string{"quantities must match"}},
		{"memory limit ratio above 1", head + "server:\n  memoryLimitRatio: 1.5\n", []string{"server.memoryLimitRatio", "more than 0 and at most 1"}},
		{"memory limit ratio negative", head + "server:\n  memoryLimitRatio: -0.1\n", []string{"server.memoryLimitRatio", "more than 0 and at most 1"}},
		{"retry period not below renew deadline", head + "server:\n  retryPeriod: 10s\n", []string{"server.retryPeriod", "shorter than server.renewDeadline"}},
		{"inject label invalid", head + "sandboxes:\n  injectLabel: '/x'\n", []string{"sandboxes.injectLabel"}},
		{"empty selector selects everything", head + "tenants:\n  namespaceSelector: ' '\n", []string{"tenants.namespaceSelector", "must select something"}},
		{"token path env invalid", head + "token:\n  pathEnv: '1TOKEN'\n", []string{"token.pathEnv"}},
		{"endpoint env invalid", head + "gateway:\n  endpointEnv: 'A=B'\n", []string{"gateway.endpointEnv"}},
		{"forbidden env name invalid", head + "gateway:\n  forbiddenEnv: ['A=B']\n", []string{"gateway.forbiddenEnv[0]"}},
		{"forbidden envFrom action unknown", head + "gateway:\n  forbiddenEnvFrom: Reject\n", []string{"gateway.forbiddenEnvFrom", `"Warn"`, `"Deny"`}},
		{"forbidden envFrom action lowercase", head + "gateway:\n  forbiddenEnvFrom: deny\n", []string{"gateway.forbiddenEnvFrom"}},
		{"provider type invalid", head + "inference:\n  providerTypes: ['not valid!']\n", []string{"inference.providerTypes[0]"}},
		{"provider type empty", head + "inference:\n  providerTypes: ['']\n", []string{"inference.providerTypes[0]", "must not be empty"}},
		{"cluster role name invalid", head + "tenancy:\n  clusterRoleName: 'Bad Name'\n", []string{"tenancy.clusterRoleName"}},
		{"gateway service account invalid", head + "tenancy:\n  serviceAccountName: 'Bad Name'\n", []string{"tenancy.serviceAccountName"}},
		{"several errors at once", head + "token:\n  expirationSeconds: 1\nimagePullPolicy: Sometimes\n", []string{"token.expirationSeconds", "imagePullPolicy"}},
		{"not yaml", "::: [", []string{"parsing config"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted an invalid config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestInvalidFingerprintIsNotEchoed(t *testing.T) {
	_, err := ParseConfig([]byte("apiVersion: sandbox-webhook.io/v1alpha1\nkind: Config\nprivateKeys:\n  allowedFingerprints: ['MIIEvQIBADANBgkq']\n"))
	if err == nil || strings.Contains(err.Error(), "MIIEvQIB") {
		t.Fatalf("error must reject without echoing the value: %v", err)
	}
}

func TestTenantSelectorOfAnUnvalidatedConfigIsSafeForConcurrentUse(t *testing.T) {
	c := DefaultConfig()
	done := make(chan bool)
	for range 4 {
		go func() {
			ok := true
			for range 200 {
				ok = ok && c.IsTenantNamespace("t", map[string]string{"sandbox-webhook.io/tenant": "true"})
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Fatal("a tenant namespace was not recognised")
		}
	}
}

func TestShutdownDelayZeroIsKeptAndUnsetIsDefaulted(t *testing.T) {
	head := "apiVersion: sandbox-webhook.io/v1alpha1\nkind: Config\n"
	cfg, err := ParseConfig([]byte(head + "server:\n  shutdownDelay: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.ShutdownDelay == nil || cfg.Server.ShutdownDelay.Duration != 0 {
		t.Errorf("shutdownDelay 0s became %v", cfg.Server.ShutdownDelay)
	}
	cfg, err = ParseConfig([]byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.ShutdownDelay == nil || cfg.Server.ShutdownDelay.Duration != 5*time.Second {
		t.Errorf("default shutdownDelay = %v, want 5s", cfg.Server.ShutdownDelay)
	}
	if cfg.Server.GracefulShutdownTimeout.Duration != 30*time.Second {
		t.Errorf("default gracefulShutdownTimeout = %v, want 30s", cfg.Server.GracefulShutdownTimeout)
	}
}

func TestForbiddenEnvFromDenyIsKept(t *testing.T) {
	cfg, err := ParseConfig([]byte("apiVersion: sandbox-webhook.io/v1alpha1\nkind: Config\ngateway:\n  forbiddenEnvFrom: Deny\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gateway.ForbiddenEnvFrom != EnvFromDeny {
		t.Errorf("gateway.forbiddenEnvFrom = %q, want Deny", cfg.Gateway.ForbiddenEnvFrom)
	}
}

func TestForbiddenEnvFromSourceMatchesByPrefix(t *testing.T) {
	cfg := DefaultConfig()
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"CLAUDE_CODE_USE_VERTEX", "USE_VERTEX", "ANTHROPIC_VERTEX_PROJECT_ID"}},
		{"CLAUDE_", []string{"CLAUDE_CODE_USE_VERTEX"}},
		{"USE_VERTEX", []string{"USE_VERTEX"}},
		{"ANTHROPIC_", []string{"ANTHROPIC_VERTEX_PROJECT_ID"}},
		{"APP_", nil},
		{"USE_VERTEX_", nil},
	}
	for _, tc := range cases {
		got := ForbiddenEnvFromSource(InjectionEnvFromSource{Prefix: tc.prefix, ConfigMapName: "c"}, cfg)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("prefix %q: got %v, want %v", tc.prefix, got, tc.want)
		}
	}
}

func TestMemoryLimitAcceptsBytesAndQuantities(t *testing.T) {
	const head = "apiVersion: sandbox-webhook.io/v1alpha1\nkind: Config\n"
	for _, v := range []string{"268435456", "256Mi", "'268435456'"} {
		cfg, err := ParseConfig([]byte(head + "server:\n  memoryLimit: " + v + "\n  memoryLimitRatio: 0.5\n"))
		if err != nil {
			t.Fatalf("memoryLimit %s: %v", v, err)
		}
		if got := cfg.Server.MemoryLimit.Value(); got != 256<<20 {
			t.Errorf("memoryLimit %s = %d bytes, want %d", v, got, 256<<20)
		}
		if cfg.Server.MemoryLimitRatio != 0.5 {
			t.Errorf("memoryLimitRatio = %v, want 0.5", cfg.Server.MemoryLimitRatio)
		}
	}
}

// A config file written when privateKeys.maxCandidates capped the scan still loads; the
// work budget grows with the object instead.
func TestMaxCandidatesOfEarlierConfigsStillLoads(t *testing.T) {
	cfg, err := ParseConfig([]byte("apiVersion: sandbox-webhook.io/v1alpha1\nkind: Config\nprivateKeys:\n  maxCandidates: 4096\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PrivateKeys.WorkPerByte != defaultWorkPerByte {
		t.Errorf("workPerByte %d, want the default %d", cfg.PrivateKeys.WorkPerByte, defaultWorkPerByte)
	}
}
