package deploy

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sandbox-webhook/sandbox-webhook/certs"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
	"github.com/sandbox-webhook/sandbox-webhook/tenancy"
	"github.com/sandbox-webhook/sandbox-webhook/test/envtestutil"
	"github.com/sandbox-webhook/sandbox-webhook/webhook"
)

// allows reports whether rules grant verb on group/resource (named name, "" for any).
func allows(rules []rbacv1.PolicyRule, group, resource, verb, name string) bool {
	has := func(list []string, v string) bool { return slices.Contains(list, v) || slices.Contains(list, "*") }
	for _, r := range rules {
		if has(r.APIGroups, group) && has(r.Resources, resource) && has(r.Verbs, verb) && (len(r.ResourceNames) == 0 || (name != "" && slices.Contains(r.ResourceNames, name))) {
			return true
		}
	}
	return false
}

// grant is one permission the code needs: verb on group/resource, named obj ("" for any).
type grant struct {
	rules                      []rbacv1.PolicyRule
	group, resource, verb, obj string
}

// TestTheRBACGrantsWhatTheCodeUsesAndNoMore reads the rules: every grant the code needs,
// named where RBAC can name it, and nothing beyond.
func TestTheRBACGrantsWhatTheCodeUsesAndNoMore(t *testing.T) {
	objs := build(t, "base")
	cfg := deployedConfig(t, objs)
	var role rbacv1.ClusterRole
	find(t, objs, "ClusterRole", "sandbox-webhook", &role)
	var lease rbacv1.Role
	find(t, objs, "Role", "sandbox-webhook-leader-election", &lease)
	if lease.Namespace != cfg.Server.LeaderElectionNamespace {
		t.Errorf("the leader election Role is in %s, the Lease in %s", lease.Namespace, cfg.Server.LeaderElectionNamespace)
	}
	const rbac, coord, events = "rbac.authorization.k8s.io", "coordination.k8s.io", "events.k8s.io"
	tn := cfg.Tenancy
	needed := []grant{
		{role.Rules, "", "namespaces", "get", ""},
		{role.Rules, "", "namespaces", "list", ""},
		{role.Rules, "", "namespaces", "watch", ""},
		{role.Rules, "", "secrets", "list", ""},
		{role.Rules, "", "secrets", "watch", ""},
		{role.Rules, "", "serviceaccounts", "list", tn.ServiceAccountName},
		{role.Rules, "", "serviceaccounts", "watch", tn.ServiceAccountName},
		{role.Rules, rbac, "clusterrolebindings", "create", ""},
		{role.Rules, rbac, "clusterrolebindings", "get", tn.BindingName},
		{role.Rules, rbac, "clusterrolebindings", "list", tn.BindingName},
		{role.Rules, rbac, "clusterrolebindings", "watch", tn.BindingName},
		{role.Rules, rbac, "clusterrolebindings", "update", tn.BindingName},
		{role.Rules, rbac, "clusterrolebindings", "delete", tn.BindingName},
		{role.Rules, rbac, "clusterroles", "bind", tn.ClusterRoleName},
		{role.Rules, events, "events", "create", ""},
		{role.Rules, events, "events", "patch", ""},
		{lease.Rules, coord, "leases", "create", ""},
		{lease.Rules, coord, "leases", "get", cfg.Server.LeaderElectionID},
		{lease.Rules, coord, "leases", "update", cfg.Server.LeaderElectionID},
		{lease.Rules, "", "events", "create", ""},
		{lease.Rules, "", "events", "patch", ""},
	}
	for _, n := range needed {
		if !allows(n.rules, n.group, n.resource, n.verb, n.obj) {
			t.Errorf("no rule allows %s %s/%s %s", n.verb, n.group, n.resource, n.obj)
		}
	}
	// Nothing else: every (group, resource, verb, names) granted is one of the above.
	for _, rules := range [][]rbacv1.PolicyRule{role.Rules, lease.Rules} {
		for _, r := range rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						names := r.ResourceNames
						if len(names) == 0 {
							names = []string{""}
						}
						for _, name := range names {
							if !slices.ContainsFunc(needed, func(n grant) bool {
								return n.group == g && n.resource == res && n.verb == v && n.obj == name
							}) {
								t.Errorf("a rule grants %s %s/%s %q, which the code does not use (or not without a name)", v, g, res, name)
							}
						}
					}
				}
			}
		}
	}
	for _, verb := range []string{"get", "create", "update", "patch", "delete"} {
		if allows(role.Rules, "", "secrets", verb, "anything") {
			t.Errorf("the webhook may %s Secrets", verb)
		}
	}
	if allows(role.Rules, rbac, "clusterrolebindings", "update", "cluster-admin") || allows(role.Rules, rbac, "clusterroles", "bind", "cluster-admin") {
		t.Error("the webhook may change or bind other roles than the gateway's")
	}

	var gw rbacv1.ClusterRole
	find(t, objs, "ClusterRole", tn.ClusterRoleName, &gw)
	if !allows(gw.Rules, "authentication.k8s.io", "tokenreviews", "create", "") || !allows(gw.Rules, "", "nodes", "list", "") {
		t.Errorf("gateway role %v does not grant tokenreviews create and nodes reads", gw.Rules)
	}
	var sa corev1.ServiceAccount
	find(t, objs, "ServiceAccount", "sandbox-webhook", &sa)
	if dep := deployment(t, objs); dep.Spec.Template.Spec.ServiceAccountName != sa.Name {
		t.Errorf("the Deployment runs as %s, not the ServiceAccount %s", dep.Spec.Template.Spec.ServiceAccountName, sa.Name)
	}
	for _, b := range []struct {
		kind, name, role string
	}{{"ClusterRoleBinding", "sandbox-webhook", role.Name}, {"RoleBinding", "sandbox-webhook-leader-election", lease.Name}} {
		var subjects []rbacv1.Subject
		var ref rbacv1.RoleRef
		if b.kind == "ClusterRoleBinding" {
			var crb rbacv1.ClusterRoleBinding
			find(t, objs, b.kind, b.name, &crb)
			subjects, ref = crb.Subjects, crb.RoleRef
		} else {
			var rb rbacv1.RoleBinding
			find(t, objs, b.kind, b.name, &rb)
			subjects, ref = rb.Subjects, rb.RoleRef
		}
		want := rbacv1.Subject{Kind: "ServiceAccount", Name: sa.Name, Namespace: sa.Namespace}
		if ref.Name != b.role || len(subjects) != 1 || subjects[0] != want {
			t.Errorf("%s %s binds %v to %s, want %v to %s", b.kind, b.name, subjects, ref.Name, want, b.role)
		}
	}
}

// TestTheWebhookRunsWithItsOwnRBAC creates the base's RBAC for real and runs the
// webhook's manager as serve builds it (the webhook's caches and handlers, the tenancy
// reconciler under leader election) as the webhook's ServiceAccount: its caches sync,
// it takes the Lease, creates and updates the shared binding. Then, as that account,
// what the code never does is refused.
func TestTheWebhookRunsWithItsOwnRBAC(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	objs := build(t, "base")
	cfg := deployedConfig(t, objs)
	ensureNamespaces(t, objs)
	var sa corev1.ServiceAccount
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			createForReal(t, o.DeepCopy())
		}
		if o.GetKind() == "ServiceAccount" {
			find(t, objs, "ServiceAccount", o.GetName(), &sa)
		}
	}
	tn := cfg.Tenancy
	t.Cleanup(func() {
		for _, o := range []client.Object{
			&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: tn.BindingName}},
			&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: cfg.Server.LeaderElectionNamespace, Name: cfg.Server.LeaderElectionID}},
		} {
			if err := cp.Client.Delete(context.Background(), o); err != nil && !apierrors.IsNotFound(err) {
				t.Error(err)
			}
		}
	})
	first := tenantNamespace(t, cfg)

	as := rest.CopyConfig(cp.Config)
	as.Impersonate = rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", sa.Namespace, sa.Name),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace, "system:authenticated"},
	}
	logs := &envtestutil.SyncBuffer{}
	log := zap.New(zap.WriteTo(logs))
	byObject := map[client.Object]cache.ByObject{}
	maps.Copy(byObject, webhook.CacheByObject(cfg))
	maps.Copy(byObject, tenancy.CacheByObject(cfg))
	certDir := t.TempDir()
	bundle, err := certs.SelfSigned([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{cfg.Server.CertName: bundle.CertPEM, cfg.Server.KeyName: bundle.KeyPEM} {
		if err := os.WriteFile(filepath.Join(certDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := cfg.Server
	leaseDuration, renew, retry := s.LeaseDuration.Duration, s.RenewDeadline.Duration, s.RetryPeriod.Duration
	mgr, err := ctrl.NewManager(as, ctrl.Options{
		Scheme:                        cp.Scheme,
		Logger:                        log,
		Cache:                         cache.Options{ByObject: byObject},
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                cfg.TenancyEnabled() && cfg.LeaderElectionEnabled(),
		LeaderElectionID:              s.LeaderElectionID,
		LeaderElectionNamespace:       s.LeaderElectionNamespace,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renew,
		RetryPeriod:                   &retry,
		LeaderElectionReleaseOnCancel: true,
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host: "127.0.0.1", Port: envtestutil.FreePort(t), CertDir: certDir, CertName: s.CertName, KeyName: s.KeyName,
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := webhook.Install(mgr, cfg); err != nil {
		t.Fatal(err)
	}
	if err := tenancy.Setup(mgr, cfg); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	defer func() {
		if t.Failed() {
			t.Logf("manager log:\n%s", logs.String())
		}
	}()

	// The reconciler creates the binding (create, bind) with the first tenant ...
	waitFor(t, "the binding with the first tenant's gateway", func() bool { return bindingHas(ctx, tn, first) })
	// ... and updates it (get and update by name) when a second tenant appears.
	second := tenantNamespace(t, cfg)
	waitFor(t, "the binding with the second tenant's gateway", func() bool { return bindingHas(ctx, tn, first, second) })
	// Every informer (Namespaces, labelled Secrets, gateway ServiceAccounts, the binding)
	// listed and watched.
	syncCtx, syncCancel := context.WithTimeout(ctx, time.Minute)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatal("the manager's caches did not sync as the webhook's ServiceAccount")
	}
	var secrets corev1.SecretList
	if err := mgr.GetCache().List(ctx, &secrets, client.InNamespace(first)); err != nil || len(secrets.Items) != 1 {
		t.Errorf("the credential cache holds %d Secrets of tenant %s, want its one labelled Secret (%v)", len(secrets.Items), first, err)
	}
	// The Lease (create, get, update) and the leader's core/v1 event on it.
	var lease coordinationv1.Lease
	waitFor(t, "the leader election Lease", func() bool {
		err := cp.Client.Get(ctx, client.ObjectKey{Namespace: s.LeaderElectionNamespace, Name: s.LeaderElectionID}, &lease)
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != ""
	})
	waitFor(t, "the leader election event", func() bool {
		var list corev1.EventList
		if err := cp.Client.List(ctx, &list, client.InNamespace(s.LeaderElectionNamespace)); err != nil {
			return false
		}
		return slices.ContainsFunc(list.Items, func(e corev1.Event) bool {
			return e.InvolvedObject.Kind == "Lease" && e.InvolvedObject.Name == s.LeaderElectionID && e.Reason == "LeaderElection"
		})
	})
	if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
		t.Errorf("the manager was refused something:\n%s", logs.String())
	}

	// As the webhook's ServiceAccount, directly: what the code does is allowed ...
	c, err := client.New(as, client.Options{Scheme: cp.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "rbac-probe." + rand.String(8)},
		EventTime:           metav1.NewMicroTime(time.Now()),
		ReportingController: "sandbox-webhook",
		ReportingInstance:   "sandbox-webhook-rbac-probe",
		Action:              "Reconcile",
		Reason:              "RoleRefMismatch",
		Type:                corev1.EventTypeWarning,
		Regarding:           corev1.ObjectReference{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding", Name: tn.BindingName},
	}
	if err := c.Create(ctx, ev, client.DryRunAll); err != nil {
		t.Errorf("the tenancy reconciler may not record its events.k8s.io event: %v", err)
	}
	// ... and what it never does is refused.
	forbidden := []struct {
		what string
		do   func() error
	}{
		{"get a Secret", func() error {
			return c.Get(ctx, client.ObjectKey{Namespace: first, Name: "credential"}, &corev1.Secret{})
		}},
		{"list every ServiceAccount", func() error { return c.List(ctx, &corev1.ServiceAccountList{}) }},
		{"read another ClusterRoleBinding", func() error {
			return c.Get(ctx, client.ObjectKey{Name: "sandbox-webhook"}, &rbacv1.ClusterRoleBinding{})
		}},
		{"label a Namespace", func() error {
			ns := &corev1.Namespace{}
			// The get is allowed: the webhook reads a Namespace its cache has not seen yet.
			if err := c.Get(ctx, client.ObjectKey{Name: first}, ns); err != nil {
				return fmt.Errorf("the webhook may not get a Namespace (it must): %w", err)
			}
			ns.Labels = map[string]string{"sandbox-webhook.io/tenant": "false"}
			return c.Update(ctx, ns, client.DryRunAll)
		}},
		{"read another Lease", func() error {
			return c.Get(ctx, client.ObjectKey{Namespace: s.LeaderElectionNamespace, Name: "other"}, &coordinationv1.Lease{})
		}},
		{"bind another ClusterRole", func() error {
			crb := &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "rbac-probe-" + rand.String(5)},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: sa.Namespace}},
			}
			return c.Create(ctx, crb, client.DryRunAll)
		}},
		{"patch the binding", func() error {
			b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: tn.BindingName}}
			return c.Patch(ctx, b, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"probe":"x"}}}`)), client.DryRunAll)
		}},
	}
	for _, f := range forbidden {
		if err := f.do(); !apierrors.IsForbidden(err) {
			t.Errorf("the webhook's ServiceAccount may %s (%v); the code never does", f.what, err)
		}
	}

	// On shutdown the leader releases the Lease (update by name).
	cancel()
	if err := <-stopped; err != nil {
		t.Errorf("manager: %v", err)
	}
	if err := cp.Client.Get(context.Background(), client.ObjectKey{Namespace: s.LeaderElectionNamespace, Name: s.LeaderElectionID}, &lease); err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
		t.Errorf("the Lease is still held by %s after shutdown", *lease.Spec.HolderIdentity)
	}
}

// tenantNamespace creates a tenant namespace with its gateway ServiceAccount and one
// labelled inference credential, and returns its name.
func tenantNamespace(t *testing.T, cfg *policy.Config) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant-" + rand.String(6), Labels: map[string]string{"sandbox-webhook.io/tenant": "true"}}}
	if err := cp.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: cfg.Tenancy.ServiceAccountName}}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "credential", Labels: map[string]string{cfg.Inference.ProviderLabel: "openai"}},
		StringData: map[string]string{"api-key": "not-a-real-key"},
	}
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "unlabelled"}, StringData: map[string]string{"x": "y"}}
	for _, o := range []client.Object{sa, secret, other} {
		if err := cp.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	return ns.Name
}

// bindingHas reports whether the shared binding lists the gateway of every namespace.
func bindingHas(ctx context.Context, tn policy.TenancyConfig, namespaces ...string) bool {
	var b rbacv1.ClusterRoleBinding
	if err := cp.Client.Get(ctx, client.ObjectKey{Name: tn.BindingName}, &b); err != nil {
		return false
	}
	for _, ns := range namespaces {
		if !slices.Contains(b.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: tn.ServiceAccountName, Namespace: ns}) {
			return false
		}
	}
	return b.RoleRef.Name == tn.ClusterRoleName
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	envtestutil.Eventually(t, what, func() (bool, string) { return ok(), "not yet" })
}
