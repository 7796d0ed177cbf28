// Package doctor checks a live cluster the way an operator would by hand: the webhook
// configurations as shipped and their caBundle against the certificate the webhook
// serves, the webhook's Deployment and Service, every tenant's part of the
// authentication chain (label, gateway ServiceAccount, binding, TokenReview right,
// inference credential), and dry runs through the API server's admission chain. It uses
// the same policy code as the webhook, reads only what a check needs, and never prints a
// credential's value.
package doctor

import (
	"context"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// Status is the outcome of one check.
type Status string

// The outcomes of a check. Only Failed makes the report fail; Skipped says a check
// does not apply here, and why.
const (
	Passed  Status = "passed"
	Warned  Status = "warned"
	Failed  Status = "failed"
	Skipped Status = "skipped"
)

// Check is one line of the checklist.
type Check struct {
	// Section groups the lines: "webhook configurations", "webhook serving",
	// "tenant <namespace>", "end to end".
	Section string `json:"section"`
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix is a one-line remedy; every line that did not pass has one.
	Fix string `json:"fix,omitempty"`
}

// Summary counts the checks by status.
type Summary struct {
	Passed  int `json:"passed"`
	Warned  int `json:"warned"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

// Report is the whole checklist.
type Report struct {
	Cluster string  `json:"cluster,omitempty"`
	Checks  []Check `json:"checks"`
	Summary Summary `json:"summary"`
	// OK is true when no check failed.
	OK bool `json:"ok"`
}

// Options say what to check and how.
type Options struct {
	// Cluster names the API server in the report.
	Cluster string
	// Namespace restricts the tenant checks to one namespace; empty checks every tenant.
	Namespace string
	// WebhookAddress is host:port to dial for the certificate the webhook serves, for a
	// webhook behind a Service whose pods are not reachable from here (kubectl
	// port-forward). Empty: the URL of a URL clientConfig, else the Service's ready
	// endpoints.
	WebhookAddress string
	// Timeout bounds each request and each dial. Default 10s.
	Timeout time.Duration
	// Progress, when set, is called with each check as it completes.
	Progress func(Check)
}

// doctor is one run.
type doctor struct {
	c      client.Client
	cfg    *policy.Config
	opts   Options
	report *Report
	// section is the section of the checks being added.
	section string
}

// Run runs every check against the cluster c talks to and returns the checklist.
func Run(ctx context.Context, c client.Client, cfg *policy.Config, opts Options) *Report {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	d := &doctor{c: c, cfg: cfg, opts: opts, report: &Report{Cluster: opts.Cluster, Checks: []Check{}}}
	target := d.webhookConfigurations(ctx)
	if target.apiUnreachable {
		return d.finish()
	}
	d.serving(ctx, target)
	tenants := d.tenants(ctx)
	d.endToEnd(ctx, tenants)
	return d.finish()
}

func (d *doctor) finish() *Report {
	r := d.report
	r.OK = r.Summary.Failed == 0
	return r
}

func (d *doctor) add(status Status, name, fix, format string, args ...any) {
	ch := Check{Section: d.section, Name: name, Status: status, Message: fmt.Sprintf(format, args...)}
	if status == Warned || status == Failed {
		ch.Fix = fix
	}
	d.report.Checks = append(d.report.Checks, ch)
	switch status {
	case Passed:
		d.report.Summary.Passed++
	case Warned:
		d.report.Summary.Warned++
	case Failed:
		d.report.Summary.Failed++
	case Skipped:
		d.report.Summary.Skipped++
	}
	if d.opts.Progress != nil {
		d.opts.Progress(ch)
	}
}

func (d *doctor) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.opts.Timeout)
}
