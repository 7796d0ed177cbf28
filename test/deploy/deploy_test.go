package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
)

var cp *envtestutil.ControlPlane

func TestMain(m *testing.M) {
	crds, err := certManagerCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		os.Exit(1)
	}
	// The Sandbox CRD (manifests/crds) and cert-manager's: the validating webhook names
	// the one, the cert-manager overlay creates objects of the other.
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

type folder struct {
	dir  string
	pull corev1.PullPolicy
}

// folders are every kustomization under manifests/ with the image pull policy its
// config sets for sandbox pods ("" leaves each container's own).
var folders = []folder{
	{"base", ""},
	{"overlays/cert-manager", ""},
	{"overlays/kind", corev1.PullIfNotPresent},
	{"overlays/production", corev1.PullAlways},
}

// TestEveryOverlayIsTested keeps folders complete: a new overlay is tested like the rest.
func TestEveryOverlayIsTested(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join(envtestutil.RepoRoot(), "manifests", "overlays"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		dir := "overlays/" + e.Name()
		if e.IsDir() && !slices.ContainsFunc(folders, func(f folder) bool { return f.dir == dir }) {
			t.Errorf("manifests/%s is not in this package's folders", dir)
		}
	}
}

// build runs kustomize over a folder under manifests/.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := Render(dir)
	if err != nil {
		t.Fatal(err)
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

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	var dep appsv1.Deployment
	find(t, objs, "Deployment", "sandbox-webhook", &dep)
	return &dep
}

// container is the webhook's container in dep.
func container(t *testing.T, dep *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i := range dep.Spec.Template.Spec.Containers {
		if c := &dep.Spec.Template.Spec.Containers[i]; c.Name == "webhook" {
			return c
		}
	}
	t.Fatal("the Deployment has no container webhook")
	return nil
}

// volume is the Deployment's volume named name.
func volume(t *testing.T, dep *appsv1.Deployment, name string) *corev1.Volume {
	t.Helper()
	for i := range dep.Spec.Template.Spec.Volumes {
		if v := &dep.Spec.Template.Spec.Volumes[i]; v.Name == name {
			return v
		}
	}
	t.Fatalf("the Deployment has no volume %s", name)
	return nil
}

// configFile is the config file the build ships: the ConfigMap that the Deployment's
// config volume names (kustomize generates it with a content hash in its name and
// rewrites the reference), at the key the container's --config flag reads.
func configFile(t *testing.T, objs []*unstructured.Unstructured) []byte {
	t.Helper()
	dep := deployment(t, objs)
	v := volume(t, dep, "config")
	if v.ConfigMap == nil {
		t.Fatal("the config volume is not a ConfigMap")
	}
	name := v.ConfigMap.Name
	if !strings.HasPrefix(name, "sandbox-webhook-config-") {
		t.Errorf("the config volume names ConfigMap %s, not the generated sandbox-webhook-config-<hash>", name)
	}
	var cm corev1.ConfigMap
	find(t, objs, "ConfigMap", name, &cm)
	var mount string
	for _, m := range container(t, dep).VolumeMounts {
		if m.Name == "config" {
			mount = m.MountPath
		}
	}
	var flag string
	for _, a := range container(t, dep).Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			flag = v
		}
	}
	key, ok := strings.CutPrefix(flag, mount+"/")
	if mount == "" || !ok {
		t.Fatalf("--config=%s is not a file in the config volume mounted at %s", flag, mount)
	}
	data, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s (keys: %v)", name, key, cm.Data)
	}
	return []byte(data)
}

// deployedConfig is the config file the build ships, loaded as serve loads it.
func deployedConfig(t *testing.T, objs []*unstructured.Unstructured) *policy.Config {
	t.Helper()
	cfg, err := policy.ParseConfig(configFile(t, objs))
	if err != nil {
		t.Fatalf("the shipped config does not load: %v", err)
	}
	return cfg
}

func TestEveryOverlayBuildsWithAValidConfig(t *testing.T) {
	base := deployedConfig(t, build(t, "base"))
	for _, f := range folders {
		t.Run(f.dir, func(t *testing.T) {
			objs := build(t, f.dir)
			cfg := deployedConfig(t, objs)
			if cfg.ImagePullPolicy != f.pull {
				t.Errorf("imagePullPolicy = %q, want %q", cfg.ImagePullPolicy, f.pull)
			}
			// An overlay's file replaces the base's: it must differ only in what the
			// overlay is for.
			same := *cfg
			same.ImagePullPolicy = base.ImagePullPolicy
			if a, b := mustJSON(t, &same), mustJSON(t, base); a != b {
				t.Errorf("the config differs from the base's in more than imagePullPolicy:\n%s\nbase:\n%s", a, b)
			}
			dep := deployment(t, objs)
			if dep.Namespace != cfg.Server.Namespace {
				t.Errorf("deployed in %s but the config names %s as the webhook's own namespace", dep.Namespace, cfg.Server.Namespace)
			}
			var certMount bool
			for _, m := range container(t, dep).VolumeMounts {
				certMount = certMount || (m.Name == "serving-certs" && m.MountPath == cfg.Server.CertDir)
			}
			if !certMount {
				t.Errorf("the serving-certs volume is not mounted at the configured certDir %s", cfg.Server.CertDir)
			}
			if dep.Spec.Template.Labels[cfg.Sandboxes.InjectLabel] != "false" {
				t.Error("the webhook's own pods must opt out of injection")
			}
			var generated int
			for _, o := range objs {
				if o.GetKind() == "ConfigMap" && strings.HasPrefix(o.GetName(), "sandbox-webhook-config") {
					generated++
				}
			}
			if generated != 1 {
				t.Errorf("%d config ConfigMaps in the build, want the one generated", generated)
			}
		})
	}
}

// TestEveryShippedConfigFileLoads loads the files themselves, strictly, as --config does.
func TestEveryShippedConfigFileLoads(t *testing.T) {
	root := filepath.Join(envtestutil.RepoRoot(), "manifests")
	files, err := filepath.Glob(filepath.Join(root, "overlays", "*", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "base", "config.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := policy.ParseConfig(data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if filepath.Base(filepath.Dir(f)) == "base" && cfg.ImagePullPolicy != "" {
			t.Errorf("%s sets imagePullPolicy %q; the base leaves each container's own", f, cfg.ImagePullPolicy)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ensureNamespaces creates the build's Namespaces for real (namespaced objects need
// theirs), or checks that the one already there carries the same labels. Namespaces are
// never deleted: without a namespace controller a deleted one stays Terminating.
func ensureNamespaces(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		if o.GetKind() != "Namespace" {
			continue
		}
		err := cp.Client.Create(ctx, o.DeepCopy())
		if apierrors.IsAlreadyExists(err) {
			var have corev1.Namespace
			if err := cp.Client.Get(ctx, client.ObjectKey{Name: o.GetName()}, &have); err != nil {
				t.Fatal(err)
			}
			for k, v := range o.GetLabels() {
				if have.Labels[k] != v {
					t.Fatalf("namespace %s exists without label %s=%s", o.GetName(), k, v)
				}
			}
			continue
		}
		if err != nil {
			t.Fatalf("creating Namespace %s: %v", o.GetName(), err)
		}
	}
}

// createForReal creates o and deletes it when the test ends.
func createForReal(t *testing.T, o client.Object) {
	t.Helper()
	if err := cp.Client.Create(context.Background(), o); err != nil {
		t.Fatalf("creating %T %s/%s: %v", o, o.GetNamespace(), o.GetName(), err)
	}
	t.Cleanup(func() {
		if err := cp.Client.Delete(context.Background(), o); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting %s/%s: %v", o.GetNamespace(), o.GetName(), err)
		}
	})
}

// TestCertManagerInjectsTheServingCA applies the cert-manager overlay to a real API
// server, stands in for cert-manager's issuer by writing the serving Certificate's
// Secret, and runs cert-manager's own CA injector: both webhook configurations must end
// up trusting the issued CA.
func TestCertManagerInjectsTheServingCA(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	objs := build(t, "overlays/cert-manager")
	ensureNamespaces(t, objs)
	// Webhook configurations last: once they exist, the API server calls a webhook that
	// is not running here for the objects they match (none of the others: they are in
	// the webhook's own namespace, which both exclude, or not matched at all).
	var hooks []*unstructured.Unstructured
	for _, o := range objs {
		switch {
		case o.GetKind() == "Namespace":
		case strings.HasSuffix(o.GetKind(), "WebhookConfiguration"):
			hooks = append(hooks, o)
		default:
			createForReal(t, o)
		}
	}
	for _, o := range hooks {
		createForReal(t, o)
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
	createForReal(t, secret)

	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoScheme, cmapi.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	logs := &errorLines{}
	log := zap.New(zap.WriteTo(logs))
	ctrl.SetLogger(log)
	// The injector names its field manager after the client's user agent.
	injectorCfg := rest.CopyConfig(cp.Config)
	injectorCfg.UserAgent = "cert-manager-cainjector"
	mgr, err := ctrl.NewManager(injectorCfg, ctrl.Options{Scheme: scheme, Logger: log, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
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
	// Stop the injector before the cleanups delete what it watches.
	defer func() { cancel(); <-stopped }()

	deadline := time.Now().Add(90 * time.Second)
	for {
		var mut admissionv1.MutatingWebhookConfiguration
		var val admissionv1.ValidatingWebhookConfiguration
		errM := cp.Client.Get(ctx, client.ObjectKey{Name: "sandbox-webhook"}, &mut)
		errV := cp.Client.Get(ctx, client.ObjectKey{Name: "sandbox-webhook"}, &val)
		missing := injected(mut.Webhooks, nil, bundle.CAPEM) + injected(nil, val.Webhooks, bundle.CAPEM)
		if errM == nil && errV == nil && len(mut.Webhooks) == 2 && len(val.Webhooks) == 1 && missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("injector errors:\n%s", logs.String())
			t.Fatalf("cert-manager did not inject the CA into every webhook (%v %v):%s", errM, errV, missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// injected lists the webhooks whose caBundle is not ca.
func injected(mut []admissionv1.MutatingWebhook, val []admissionv1.ValidatingWebhook, ca []byte) string {
	var missing string
	for _, w := range mut {
		if !bytes.Equal(w.ClientConfig.CABundle, ca) {
			missing += fmt.Sprintf(" %s (%d bytes)", w.Name, len(w.ClientConfig.CABundle))
		}
	}
	for _, w := range val {
		if !bytes.Equal(w.ClientConfig.CABundle, ca) {
			missing += fmt.Sprintf(" %s (%d bytes)", w.Name, len(w.ClientConfig.CABundle))
		}
	}
	return missing
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
