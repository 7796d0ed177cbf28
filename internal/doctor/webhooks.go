package doctor

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"reflect"
	"strconv"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/manifests"
)

const (
	sectionConfigurations = "webhook configurations"
	sectionServing        = "webhook serving"
	fixApply              = "apply the deployment again (kubectl apply -k manifests/overlays/<your overlay>), which restores the shipped configurations"
)

// target is where the webhook configurations send requests.
type target struct {
	apiUnreachable bool
	// url is set for a URL clientConfig, service for a Service one.
	url     string
	service *admissionv1.ServiceReference
}

// liveWebhook is what doctor compares of one webhook, mutating or validating.
type liveWebhook struct {
	name          string
	rules         []admissionv1.RuleWithOperations
	failurePolicy *admissionv1.FailurePolicyType
	timeout       *int32
	clientConfig  admissionv1.WebhookClientConfig
}

func mutatingWebhooks(m *admissionv1.MutatingWebhookConfiguration) []liveWebhook {
	var out []liveWebhook
	for _, w := range m.Webhooks {
		out = append(out, liveWebhook{w.Name, w.Rules, w.FailurePolicy, w.TimeoutSeconds, w.ClientConfig})
	}
	return out
}

func validatingWebhooks(v *admissionv1.ValidatingWebhookConfiguration) []liveWebhook {
	var out []liveWebhook
	for _, w := range v.Webhooks {
		out = append(out, liveWebhook{w.Name, w.Rules, w.FailurePolicy, w.TimeoutSeconds, w.ClientConfig})
	}
	return out
}

// webhookConfigurations checks that both configurations exist as shipped and that
// their caBundle verifies the certificate the webhook serves.
func (d *doctor) webhookConfigurations(ctx context.Context) target {
	d.section = sectionConfigurations
	var t target
	mutating, validating, err := manifests.WebhookConfigurations()
	if err != nil {
		d.add(Failed, "shipped configurations", "rebuild the binary from an intact checkout", "the embedded webhooks.yaml does not parse: %v", err)
		return t
	}
	type pair struct {
		kind    string
		shipped []liveWebhook
		obj     client.Object
		live    func() []liveWebhook
	}
	var pairs []pair
	for _, m := range mutating {
		live := &admissionv1.MutatingWebhookConfiguration{}
		live.Name = m.Name
		pairs = append(pairs, pair{"MutatingWebhookConfiguration", mutatingWebhooks(m), live, func() []liveWebhook { return mutatingWebhooks(live) }})
	}
	for _, v := range validating {
		live := &admissionv1.ValidatingWebhookConfiguration{}
		live.Name = v.Name
		pairs = append(pairs, pair{"ValidatingWebhookConfiguration", validatingWebhooks(v), live, func() []liveWebhook { return validatingWebhooks(live) }})
	}
	served := map[string]servedCert{}
	for _, p := range pairs {
		name := p.kind + " " + p.obj.GetName()
		rctx, cancel := d.timeout(ctx)
		err := d.c.Get(rctx, client.ObjectKeyFromObject(p.obj), p.obj)
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			d.add(Failed, name, fixApply, "not found: the API server calls no webhook of it")
			continue
		case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
			d.add(Failed, name, "run doctor with credentials that may read admissionregistration.k8s.io objects", "cannot read it: %v", err)
			continue
		case err != nil:
			d.add(Failed, "API server", "check --kubeconfig and that the API server is reachable from here", "cannot read %s: %v", name, err)
			t.apiUnreachable = true
			return t
		}
		live := p.live()
		if diffs := compareWebhooks(p.shipped, live); len(diffs) > 0 {
			d.add(Failed, name, fixApply, "differs from the shipped one: %s", strings.Join(diffs, "; "))
		} else {
			d.add(Passed, name, "", "%d webhook%s as shipped (rules, failurePolicy %s, timeoutSeconds %s, paths)", len(live), plural(len(live)), policyText(live[0].failurePolicy), int32Text(live[0].timeout))
		}
		if len(live) > 0 && t.url == "" && t.service == nil {
			cc := live[0].clientConfig
			if cc.URL != nil {
				t.url = *cc.URL
				if u, err := url.Parse(*cc.URL); err == nil {
					t.url = u.Scheme + "://" + u.Host
				}
			} else {
				t.service = cc.Service
			}
		}
		d.caBundle(ctx, name, live, served)
	}
	return t
}

// compareWebhooks lists how live differs from shipped in what the API server acts on.
func compareWebhooks(shipped, live []liveWebhook) []string {
	var diffs []string
	byName := map[string]liveWebhook{}
	for _, w := range live {
		byName[w.name] = w
	}
	for _, s := range shipped {
		l, ok := byName[s.name]
		if !ok {
			diffs = append(diffs, "webhook "+s.name+" is missing")
			continue
		}
		if !reflect.DeepEqual(s.rules, l.rules) {
			diffs = append(diffs, fmt.Sprintf("webhook %s: rules %s, shipped %s", s.name, rulesText(l.rules), rulesText(s.rules)))
		}
		if policyText(s.failurePolicy) != policyText(l.failurePolicy) {
			diffs = append(diffs, fmt.Sprintf("webhook %s: failurePolicy %s, shipped %s", s.name, policyText(l.failurePolicy), policyText(s.failurePolicy)))
		}
		if int32Text(s.timeout) != int32Text(l.timeout) {
			diffs = append(diffs, fmt.Sprintf("webhook %s: timeoutSeconds %s, shipped %s", s.name, int32Text(l.timeout), int32Text(s.timeout)))
		}
		if sp, lp := clientPath(s.clientConfig), clientPath(l.clientConfig); sp != lp {
			diffs = append(diffs, fmt.Sprintf("webhook %s: path %q, shipped %q", s.name, lp, sp))
		}
	}
	return diffs
}

func rulesText(rules []admissionv1.RuleWithOperations) string {
	var parts []string
	for _, r := range rules {
		parts = append(parts, fmt.Sprintf("%v %v", r.Operations, r.Resources))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func policyText(p *admissionv1.FailurePolicyType) string {
	if p == nil {
		return "unset"
	}
	return string(*p)
}

func int32Text(p *int32) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(int(*p))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// clientPath is the HTTP path a client config calls.
func clientPath(cc admissionv1.WebhookClientConfig) string {
	// Compared cleaned: envtest and some installers write "https://host:port//path".
	if cc.Service != nil && cc.Service.Path != nil {
		return path.Clean(*cc.Service.Path)
	}
	if cc.URL != nil {
		if u, err := url.Parse(*cc.URL); err == nil && u.Path != "" {
			return path.Clean(u.Path)
		}
	}
	return ""
}

// servedCert is the certificate chain one address served, or why it could not be read.
type servedCert struct {
	chain []*x509.Certificate
	err   error
}

// caBundle checks each webhook's caBundle against the certificate served where the
// webhook's clientConfig points.
func (d *doctor) caBundle(ctx context.Context, config string, live []liveWebhook, served map[string]servedCert) {
	name := "caBundle of " + config
	var problems, verified []string
	var unreachable []string
	fix := ""
	for _, w := range live {
		cc := w.clientConfig
		if len(cc.CABundle) == 0 {
			problems = append(problems, "webhook "+w.name+": caBundle is empty")
			fix = "with the cert-manager overlay, cert-manager's CA injector fills caBundle: check that cainjector runs and the Certificate is Ready (kubectl -n <webhook namespace> get certificate)"
			continue
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cc.CABundle) {
			problems = append(problems, "webhook "+w.name+": caBundle holds no PEM certificate")
			fix = "caBundle must be the PEM of the CA that signed the serving certificate"
			continue
		}
		addr, serverName, why := d.dialTarget(ctx, cc)
		if addr == "" {
			unreachable = append(unreachable, why)
			continue
		}
		sc, ok := served[addr]
		if !ok {
			sc = d.dial(ctx, addr, serverName)
			served[addr] = sc
		}
		if sc.err != nil {
			unreachable = append(unreachable, fmt.Sprintf("dialing %s: %v", addr, sc.err))
			continue
		}
		inter := x509.NewCertPool()
		for _, c := range sc.chain[1:] {
			inter.AddCert(c)
		}
		if _, err := sc.chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: serverName}); err != nil {
			problems = append(problems, fmt.Sprintf("webhook %s: the certificate served at %s (%s) does not verify with caBundle: %v", w.name, addr, certFingerprint(sc.chain[0]), err))
			fix = "caBundle and the serving certificate come from different CAs: renew the Certificate or re-run the CA injection, then restart the webhook if it does not reload"
			continue
		}
		verified = append(verified, fmt.Sprintf("%s (%s, %s, until %s)", addr, serverName, certFingerprint(sc.chain[0]), sc.chain[0].NotAfter.UTC().Format("2006-01-02")))
	}
	switch {
	case len(problems) > 0:
		d.add(Failed, name, fix, "%s", strings.Join(problems, "; "))
	case len(unreachable) > 0:
		d.add(Warned, name, "run `kubectl -n <webhook namespace> port-forward svc/<service> 9443:443` and pass --webhook-address 127.0.0.1:9443",
			"caBundle is set, but the served certificate could not be read from here: %s", strings.Join(unique(unreachable), "; "))
	default:
		d.add(Passed, name, "", "verifies the certificate served at %s", strings.Join(unique(verified), ", "))
	}
}

// dialTarget is the address to dial for a client config and the name its certificate
// must hold; an empty address comes with the reason.
func (d *doctor) dialTarget(ctx context.Context, cc admissionv1.WebhookClientConfig) (addr, serverName, why string) {
	if cc.URL != nil {
		u, err := url.Parse(*cc.URL)
		if err != nil {
			return "", "", fmt.Sprintf("clientConfig.url does not parse: %v", err)
		}
		port := u.Port()
		if port == "" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
		if d.opts.WebhookAddress != "" {
			addr = d.opts.WebhookAddress
		}
		return addr, u.Hostname(), ""
	}
	svc := cc.Service
	if svc == nil {
		return "", "", "clientConfig has neither url nor service"
	}
	serverName = svc.Name + "." + svc.Namespace + ".svc"
	if d.opts.WebhookAddress != "" {
		return d.opts.WebhookAddress, serverName, ""
	}
	addrs, err := d.endpointAddresses(ctx, svc)
	if err != nil {
		return "", "", err.Error()
	}
	if len(addrs) == 0 {
		return "", "", fmt.Sprintf("Service %s/%s has no ready endpoint", svc.Namespace, svc.Name)
	}
	return addrs[0], serverName, ""
}

// endpointAddresses are the ready pod addresses (ip:targetPort) behind the service port
// a clientConfig calls.
func (d *doctor) endpointAddresses(ctx context.Context, ref *admissionv1.ServiceReference) ([]string, error) {
	rctx, cancel := d.timeout(ctx)
	defer cancel()
	svc := &corev1.Service{}
	if err := d.c.Get(rctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, svc); err != nil {
		return nil, fmt.Errorf("Service %s/%s: %v", ref.Namespace, ref.Name, err)
	}
	port := int32(443)
	if ref.Port != nil {
		port = *ref.Port
	}
	portName := ""
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			portName = p.Name
		}
	}
	slices := &discoveryv1.EndpointSliceList{}
	if err := d.c.List(rctx, slices, client.InNamespace(ref.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: ref.Name}); err != nil {
		return nil, fmt.Errorf("EndpointSlices of Service %s/%s: %v", ref.Namespace, ref.Name, err)
	}
	var out []string
	for _, s := range slices.Items {
		var target int32
		for _, p := range s.Ports {
			if p.Port != nil && (p.Name != nil && *p.Name == portName || len(s.Ports) == 1) {
				target = *p.Port
			}
		}
		if target == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				out = append(out, net.JoinHostPort(a, strconv.Itoa(int(target))))
			}
		}
	}
	return out, nil
}

// dial reads the certificate chain served at addr. It verifies nothing itself: the
// caller verifies the chain against caBundle.
func (d *doctor) dial(ctx context.Context, addr, serverName string) servedCert {
	dctx, cancel := d.timeout(ctx)
	defer cancel()
	dialer := tls.Dialer{Config: &tls.Config{ServerName: serverName, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} // verified against caBundle by the caller
	conn, err := dialer.DialContext(dctx, "tcp", addr)
	if err != nil {
		return servedCert{err: err}
	}
	defer conn.Close()
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return servedCert{err: errors.New("no certificate served")}
	}
	return servedCert{chain: chain}
}

// certFingerprint is the short SHA-256 fingerprint dev prints for its certificate.
func certFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "SHA256:" + hex.EncodeToString(sum[:8])
}

func unique(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
