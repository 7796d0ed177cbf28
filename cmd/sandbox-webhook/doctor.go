package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandbox-webhook/sandbox-webhook/internal/doctor"
	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

// doctorCommand checks a live cluster and prints the checklist; it fails (exit 1) when a
// check failed, and exits 2 on a usage or config error.
func doctorCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)")
	kubeContext := fs.String("context", "", "kubeconfig context (default: the current one)")
	namespace := fs.String("namespace", "", "check only this tenant namespace (default: every tenant)")
	output := fs.String("o", "text", "output: text (a checklist, line by line) or json (one document, for CI)")
	webhookAddr := fs.String("webhook-address", "", "host:port to read the webhook's served certificate from, such as a kubectl port-forward (default: the clientConfig URL, else the Service's ready endpoints)")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on each request and dial")
	load := loadConfigFlag(fs, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("doctor: unexpected arguments %q", fs.Args())}
	}
	if *output != "text" && *output != "json" {
		return &exitError{code: 2, err: fmt.Errorf("doctor: -o %q: want text or json", *output)}
	}
	if *timeout <= 0 {
		return &exitError{code: 2, err: fmt.Errorf("doctor: --timeout %s: want a positive duration", *timeout)}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	restCfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kubeContext}).ClientConfig()
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("doctor: kubeconfig: %w", err)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	report, err := runDoctor(ctx, restCfg, cfg, doctor.Options{Namespace: *namespace, WebhookAddress: *webhookAddr, Timeout: *timeout}, *output == "json", stdout)
	if err != nil {
		return err
	}
	if !report.OK {
		return &exitError{code: 1}
	}
	return nil
}

// runDoctor runs the checks against restCfg's cluster and writes the report as text
// (line by line, as the checks complete) or JSON.
func runDoctor(ctx context.Context, restCfg *rest.Config, cfg *policy.Config, opts doctor.Options, asJSON bool, out io.Writer) (*doctor.Report, error) {
	c, err := client.New(restCfg, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("doctor: %w", err)
	}
	opts.Cluster = strings.TrimSuffix(restCfg.Host, "/")
	return doctorReport(ctx, c, cfg, opts, asJSON, out)
}

// doctorReport runs the checks with c and writes the report.
func doctorReport(ctx context.Context, c client.Client, cfg *policy.Config, opts doctor.Options, asJSON bool, out io.Writer) (*doctor.Report, error) {
	if asJSON {
		report := doctor.Run(ctx, c, cfg, opts)
		return report, doctor.WriteJSON(out, report)
	}
	p := &doctor.TextPrinter{W: out}
	if opts.Cluster != "" {
		fmt.Fprintf(out, "sandbox-webhook doctor: API server %s\n", opts.Cluster)
	}
	opts.Progress = p.Print
	report := doctor.Run(ctx, c, cfg, opts)
	p.Summary(report)
	return report, nil
}

// linePrefixWriter writes each line with a prefix.
type linePrefixWriter struct {
	prefix  string
	w       io.Writer
	midLine bool
}

func (l *linePrefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		if !l.midLine {
			if _, err := io.WriteString(l.w, l.prefix); err != nil {
				return 0, err
			}
		}
		if _, err := io.WriteString(l.w, line); err != nil {
			return 0, err
		}
		l.midLine = !strings.HasSuffix(line, "\n")
	}
	return len(p), nil
}
