// Command sandbox-webhook is the admission webhook for agent sandbox pods.
//
//	sandbox-webhook serve --config FILE     run in a cluster
//	sandbox-webhook dev                     embedded API server + etcd with the webhook installed
//	sandbox-webhook check -f PATH [...]     offline validation (and --mutate) over YAML files
//	sandbox-webhook doctor [--namespace NS]  check a live cluster's webhook and tenants
//	sandbox-webhook --print-config [--config FILE]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/sandbox-webhook/sandbox-webhook/policy"
)

const usage = `sandbox-webhook: admission webhook for agent sandbox pods

Usage:
  sandbox-webhook serve [--config FILE] [flags]  serve the webhooks and the tenancy reconciler in a cluster
  sandbox-webhook dev [--demo] [flags]           start a local API server + etcd with the webhook installed (--demo: show it at work)
  sandbox-webhook check [--mutate] -f PATH ...   run validation (and mutation) offline over YAML/JSON files
  sandbox-webhook doctor [-o json] [flags]       check a live cluster: webhook configurations, serving, every tenant's chain, dry runs
  sandbox-webhook --print-config [--config FILE] print the effective configuration and exit

Run "sandbox-webhook COMMAND -h" for a command's flags.
`

// exitError carries a process exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(args, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "sandbox-webhook:", ee.err)
		}
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "sandbox-webhook:", err)
	return 1
}

func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "serve":
		return serveCommand(args[1:], stderr)
	case "dev":
		return devCommand(args[1:], stdout, stderr)
	case "check":
		return checkCommand(args[1:], stdin, stdout, stderr)
	case "doctor":
		return doctorCommand(args[1:], stdout, stderr)
	case devWatchdogCommand: // started by dev, not listed in the usage
		return devWatchdogMain(stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	// Top-level flags: --print-config [--config FILE].
	fs := flag.NewFlagSet("sandbox-webhook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (YAML, kind: Config); defaults apply when unset")
	printConfig := fs.Bool("print-config", false, "print the effective configuration and exit")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if !*printConfig || fs.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: fmt.Errorf("unknown command %q", args[0])}
	}
	cfg, err := policy.LoadConfig(*configPath)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	return printEffectiveConfig(stdout, cfg)
}

func printEffectiveConfig(w io.Writer, cfg *policy.Config) error {
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// loadConfigFlag registers --config and --print-config on fs and returns a loader for
// after Parse; --print-config writes to out.
func loadConfigFlag(fs *flag.FlagSet, out io.Writer) func() (*policy.Config, error) {
	return loadConfigFlagWith(fs, out, nil)
}

// loadConfigFlagWith is loadConfigFlag with flag overrides applied to the loaded config
// (and validated again) before it is printed and used.
func loadConfigFlagWith(fs *flag.FlagSet, out io.Writer, override func(*policy.Config)) func() (*policy.Config, error) {
	path := fs.String("config", "", "config file (YAML, kind: Config); defaults apply when unset")
	print := fs.Bool("print-config", false, "print the effective configuration before starting")
	return func() (*policy.Config, error) {
		cfg, err := policy.LoadConfig(*path)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		if override != nil {
			override(cfg)
			if err := cfg.Validate(); err != nil {
				return nil, &exitError{code: 2, err: fmt.Errorf("config with flags applied: %w", err)}
			}
		}
		if *print {
			if err := printEffectiveConfig(out, cfg); err != nil {
				return nil, err
			}
		}
		return cfg, nil
	}
}

// serverFlags are the flags of the long-running commands (serve, dev): --config,
// --print-config and the log flags, plus whatever the command adds. A command's flags
// that stand for config fields are applied through overrides, after the file is loaded
// and before it is validated.
type serverFlags struct {
	*flag.FlagSet
	load      func() (*policy.Config, error)
	overrides []func(*policy.Config)
	logLevel  string
	logFormat string
	stderr    io.Writer
}

func newServerFlags(name string, stderr io.Writer, development bool) *serverFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &serverFlags{FlagSet: fs, stderr: stderr}
	f.load = loadConfigFlagWith(fs, stderr, func(cfg *policy.Config) {
		for _, o := range f.overrides {
			o(cfg)
		}
	})
	format := "auto"
	if development {
		format = "text"
	}
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, error, or a number for more verbosity (2, 3, ...)")
	fs.StringVar(&f.logFormat, "log-format", format, "log format: json, text, or auto (text on a terminal, json otherwise)")
	return f
}

// override registers a config override that applies when the flag was set explicitly.
func (f *serverFlags) override(flagName string, apply func(*policy.Config)) {
	f.overrides = append(f.overrides, func(cfg *policy.Config) {
		set := false
		f.Visit(func(fl *flag.Flag) { set = set || fl.Name == flagName })
		if set {
			apply(cfg)
		}
	})
}

// parse parses args, loads and validates the config and installs the logger.
func (f *serverFlags) parse(args []string) (*policy.Config, logr.Logger, error) {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, logr.Discard(), err
		}
		return nil, logr.Discard(), &exitError{code: 2, err: err}
	}
	if f.NArg() > 0 {
		return nil, logr.Discard(), &exitError{code: 2, err: fmt.Errorf("%s: unexpected arguments %q", f.Name(), f.Args())}
	}
	log, err := newLogger(f.logLevel, f.logFormat, f.stderr)
	if err != nil {
		return nil, logr.Discard(), &exitError{code: 2, err: err}
	}
	cfg, err := f.load()
	if err != nil {
		return nil, logr.Discard(), err
	}
	ctrl.SetLogger(log)
	return cfg, log, nil
}

// newLogger builds the process logger: JSON in a cluster, human-readable on a terminal.
func newLogger(level, format string, w io.Writer) (logr.Logger, error) {
	var lvl zapcore.Level
	switch level {
	case "debug":
		lvl = zapcore.DebugLevel
	case "info":
		lvl = zapcore.InfoLevel
	case "error":
		lvl = zapcore.ErrorLevel
	default:
		n, err := strconv.Atoi(level)
		if err != nil || n < 0 || n > 10 {
			return logr.Discard(), fmt.Errorf("--log-level %q: want debug, info, error or a verbosity from 0 to 10", level)
		}
		lvl = zapcore.Level(-n)
	}
	opts := []zap.Opts{zap.Level(lvl), zap.WriteTo(w)}
	switch format {
	case "json":
		opts = append(opts, zap.JSONEncoder())
	case "text":
		opts = append(opts, zap.ConsoleEncoder())
	case "auto":
		if isTerminal(w) {
			opts = append(opts, zap.ConsoleEncoder())
		} else {
			opts = append(opts, zap.JSONEncoder())
		}
	default:
		return logr.Discard(), fmt.Errorf("--log-format %q: want json, text or auto", format)
	}
	return zap.New(opts...), nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
