package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
	"github.com/sandbox-webhook/sandbox-webhook/webhook"
)

var cp *envtestutil.ControlPlane

func TestMain(m *testing.M) {
	crds, err := certManagerCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		os.Exit(1)
	}
	envtestutil.Main(m, envtestutil.Options{CRDDirs: []string{"manifests/crds", crds}}, &cp)
}

// certManagerCRDs is cert-manager's own CRD folder, from the module this test builds with.
func certManagerCRDs() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager").Output()
	if err != nil {
		return "", fmt.Errorf("locating the cert-manager module: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds"), nil
}

// build runs kustomize over a folder under manifests/.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(envtestutil.RepoRoot(), "manifests", dir))
	if err != nil {
		t.Fatalf("kustomize build manifests/%s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s/%s not in the build", kind, name)
}

// deployedConfig is the config file the overlay ships, loaded as serve would load it.
func deployedConfig(t *testing.T, objs []*unstructured.Unstructured) *policy.Config {
	t.Helper()
	var cm corev1.ConfigMap
	find(t, objs, "ConfigMap", "sandbox-webhook-config", &cm)
	cfg, err := policy.ParseConfig([]byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("the shipped config does not load: %v", err)
	}
	return cfg
}

func TestEveryOverlayBuildsWithAValidConfig(t *testing.T) {
	for dir, pull := range map[string]corev1.PullPolicy{"base": "", "overlays/kind": corev1.PullIfNotPresent, "overlays/production": corev1.PullAlways} {
		t.Run(dir, func(t *testing.T) {
			objs := build(t, dir)
			cfg := deployedConfig(t, objs)
			if cfg.ImagePullPolicy != pull {
				t.Errorf("imagePullPolicy = %q, want %q", cfg.ImagePullPolicy, pull)
			}
			var dep appsv1.Deployment
			find(t, objs, "Deployment", "sandbox-webhook", &dep)
			if dep.Namespace != cfg.Server.Namespace {
				t.Errorf("deployed in %s but the config names %s as the webhook's own namespace", dep.Namespace, cfg.Server.Namespace)
			}
			var certMount bool
			for _, m := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
				certMount = certMount || m.MountPath == cfg.Server.CertDir
			}
			if !certMount {
				t.Errorf("no volume mounted at the configured certDir %s", cfg.Server.CertDir)
			}
			if dep.Spec.Template.Labels["sandbox-webhook.io/inject"] != "false" {
				t.Error("the webhook's own pods must opt out of injection")
			}
		})
	}
}

func TestWebhookConfigurationsMatchTheServer(t *testing.T) {
	objs := build(t, "base")
	var mut admissionv1.MutatingWebhookConfiguration
	var val admissionv1.ValidatingWebhookConfiguration
	find(t, objs, "MutatingWebhookConfiguration", "sandbox-webhook", &mut)
	find(t, objs, "ValidatingWebhookConfiguration", "sandbox-webhook", &val)
	var svc corev1.Service
	find(t, objs, "Service", "sandbox-webhook", &svc)
	for _, c := range []struct {
		cc   admissionv1.WebhookClientConfig
		path string
	}{{mut.Webhooks[0].ClientConfig, webhook.PathMutatePods}, {val.Webhooks[0].ClientConfig, webhook.PathValidatePrivateKeys}} {
		if c.cc.Service == nil || *c.cc.Service.Path != c.path || c.cc.Service.Name != svc.Name || c.cc.Service.Namespace != svc.Namespace {
			t.Errorf("clientConfig %+v does not reach service %s/%s at %s", c.cc.Service, svc.Namespace, svc.Name, c.path)
		}
	}
	if p := mut.Webhooks[0].ReinvocationPolicy; p == nil || *p != admissionv1.IfNeededReinvocationPolicy {
		t.Error("the mutating webhook must be reinvoked IfNeeded")
	}
	var secretsRule bool
	for _, r := range val.Webhooks[0].Rules {
		for _, res := range r.Resources {
			secretsRule = secretsRule || res == "secrets"
		}
	}
	if secretsRule {
		t.Error("Secrets are where keys belong: the validating webhook must not match them")
	}
	var cert cmapi.Certificate
	find(t, objs, "Certificate", "sandbox-webhook-serving", &cert)
	want := fmt.Sprintf("%s.%s.svc", svc.Name, svc.Namespace)
	if !strings.Contains(strings.Join(cert.Spec.DNSNames, ","), want) {
		t.Errorf("certificate names %v, not the service %s", cert.Spec.DNSNames, want)
	}
	for _, ann := range []string{mut.Annotations["cert-manager.io/inject-ca-from"], val.Annotations["cert-manager.io/inject-ca-from"]} {
		if ann != cert.Namespace+"/"+cert.Name {
			t.Errorf("inject-ca-from %q does not name the Certificate %s/%s", ann, cert.Namespace, cert.Name)
		}
	}
}

func TestTheWebhookMayBindTheGatewayRole(t *testing.T) {
	objs := build(t, "base")
	var role rbacv1.ClusterRole
	find(t, objs, "ClusterRole", "sandbox-webhook", &role)
	allowed := func(group, resource, verb, name string) bool {
		for _, r := range role.Rules {
			has := func(list []string, v string) bool {
				for _, x := range list {
					if x == v || x == "*" {
						return true
					}
				}
				return false
			}
			if has(r.APIGroups, group) && has(r.Resources, resource) && has(r.Verbs, verb) && (len(r.ResourceNames) == 0 || has(r.ResourceNames, name)) {
				return true
			}
		}
		return false
	}
	cfg := deployedConfig(t, objs)
	for _, c := range [][4]string{
		{"rbac.authorization.k8s.io", "clusterrolebindings", "create", ""},
		{"rbac.authorization.k8s.io", "clusterrolebindings", "update", cfg.Tenancy.BindingName},
		{"rbac.authorization.k8s.io", "clusterroles", "bind", cfg.Tenancy.ClusterRoleName},
		{"", "secrets", "watch", ""},
		{"", "namespaces", "list", ""},
		{"", "serviceaccounts", "watch", ""},
	} {
		if !allowed(c[0], c[1], c[2], c[3]) {
			t.Errorf("the webhook's ClusterRole does not allow %s %s/%s %s", c[2], c[0], c[1], c[3])
		}
	}
	if allowed("", "secrets", "get", "anything") {
		t.Error("the webhook must not get arbitrary Secrets")
	}
	var gw rbacv1.ClusterRole
	find(t, objs, "ClusterRole", cfg.Tenancy.ClusterRoleName, &gw)
	if len(gw.Rules) == 0 || gw.Rules[0].Resources[0] != "tokenreviews" || gw.Rules[0].Verbs[0] != "create" {
		t.Errorf("gateway role %v does not grant tokenreviews create", gw.Rules)
	}
}

// TestCertManagerInjectsTheServingCA applies the base to a real API server, stands in for
// cert-manager's issuer by writing the Certificate's Secret, and runs cert-manager's own
// CA injector: both webhook configurations must end up trusting the issued CA.
func TestCertManagerInjectsTheServingCA(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	objs := build(t, "base")
	// Webhook configurations last: once they exist, the API server calls a webhook that
	// is not running here for the objects they match.
	var hooks []*unstructured.Unstructured
	for _, o := range objs {
		if strings.HasSuffix(o.GetKind(), "WebhookConfiguration") {
			hooks = append(hooks, o)
			continue
		}
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatalf("applying %s/%s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	for _, o := range hooks {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatalf("applying %s/%s: %v", o.GetKind(), o.GetName(), err)
		}
	}

	var cert cmapi.Certificate
	find(t, objs, "Certificate", "sandbox-webhook-serving", &cert)
	bundle, err := certs.SelfSigned(cert.Spec.DNSNames, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": bundle.CertPEM, "tls.key": bundle.KeyPEM, "ca.crt": bundle.CAPEM}}
	secret.Namespace, secret.Name = cert.Namespace, cert.Spec.SecretName
	secret.Annotations = map[string]string{cmapi.CertificateNameKey: cert.Name}
	if err := cp.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoScheme, cmapi.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	logs := &errorLines{}
	ctrl.SetLogger(zap.New(zap.WriteTo(logs)))
	// The injector names its field manager after the client's user agent.
	injectorCfg := rest.CopyConfig(cp.Config)
	injectorCfg.UserAgent = "cert-manager-cainjector"
	mgr, err := ctrl.NewManager(injectorCfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	err = cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			"mutatingwebhookconfiguration":   true,
			"validatingwebhookconfiguration": true,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { _ = mgr.Start(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	deadline := time.Now().Add(90 * time.Second)
	for {
		var mut admissionv1.MutatingWebhookConfiguration
		var val admissionv1.ValidatingWebhookConfiguration
		errM := cp.Client.Get(ctx, client.ObjectKey{Name: "sandbox-webhook"}, &mut)
		errV := cp.Client.Get(ctx, client.ObjectKey{Name: "sandbox-webhook"}, &val)
		if errM == nil && errV == nil && bytes.Equal(mut.Webhooks[0].ClientConfig.CABundle, bundle.CAPEM) && bytes.Equal(val.Webhooks[0].ClientConfig.CABundle, bundle.CAPEM) {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("injector errors:\n%s", logs.String())
			t.Fatalf("cert-manager did not inject the CA: mutating %d bytes, validating %d bytes (%v %v)", len(mut.Webhooks[0].ClientConfig.CABundle), len(val.Webhooks[0].ClientConfig.CABundle), errM, errV)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// errorLines keeps the injector's error lines for the failure message.
type errorLines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (e *errorLines) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if bytes.Contains(p, []byte("error")) {
		e.b.Write(p)
	}
	return len(p), nil
}

func (e *errorLines) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.b.String()
}
