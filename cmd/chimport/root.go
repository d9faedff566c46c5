package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/configsource"
)

// env is everything a command takes from the process: where to write, how
// to read the environment, and the clock. Tests pass their own.
type env struct {
	stdout    io.Writer
	stderr    io.Writer
	lookupEnv func(string) (string, bool)
	clock     clock.Clock // nil means clock.Real{}
}

// globalOptions are the flags every command shares.
type globalOptions struct {
	configPath string
	logFormat  string
	logLevel   string

	// logger is built from logFormat and logLevel once flags are parsed.
	logger *slog.Logger
}

const defaultConfigPath = "chimport.yaml"

// execute runs chimport with args and returns the exit code. It prints the
// error of a failed command on stderr, once.
func execute(ctx context.Context, args []string, e env) int {
	if e.clock == nil {
		e.clock = clock.Real{}
	}
	root := newRootCmd(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil && !printed(err) {
		if wantsUsageHint(err) {
			fmt.Fprintf(e.stderr, "chimport: %v\nRun 'chimport --help' for usage.\n", err)
		} else {
			fmt.Fprintf(e.stderr, "chimport: %v\n", err)
		}
	}
	return exitCode(err)
}

// newRootCmd builds the command tree. Commands read opts when they run,
// after flags are parsed and the logger is built.
func newRootCmd(e env) *cobra.Command {
	opts := &globalOptions{logger: slog.New(slog.DiscardHandler)}
	root := &cobra.Command{
		Use:   "chimport",
		Short: "Keep your own system in step with your Mailchimp audiences",
		Long: `chimport pages through the members of Mailchimp audiences, maps each member to
your record shape and POSTs the records in batches to your HTTP API. It sends only
what changed since the last run and never loses a change.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// A bare word that is not a command is a usage error (exit 2).
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			l, err := newLogger(e, opts.logFormat, opts.logLevel)
			if err != nil {
				return err
			}
			opts.logger = l
			return nil
		},
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{err}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&opts.configPath, "config", "", "config file (default $CHIMPORT_CONFIG, then ./"+defaultConfigPath+")")
	pf.StringVar(&opts.logFormat, "log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text or json")
	pf.StringVar(&opts.logLevel, "log-level", "info", "log level: debug, info, warn or error")

	root.AddCommand(
		newVersionCmd(e),
		newSimCmd(e, opts),
		newCheckCmd(e, opts),
		newRunCmd(e, opts),
		newInitCmd(e, opts),
		newServeCmd(e, opts),
		newStatusCmd(e, opts),
		newRejectedCmd(e, opts),
		newWebhooksCmd(e, opts),
		newDemoCmd(e, opts),
	)
	return root
}

// newLogger builds the slog logger on stderr. "auto" picks text for a person
// at a terminal and JSON for a log collector.
func newLogger(e env, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "auto":
		if isTerminal(e.stderr) {
			return slog.New(slog.NewTextHandler(e.stderr, hopts)), nil
		}
		return slog.New(slog.NewJSONHandler(e.stderr, hopts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(e.stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(e.stderr, hopts)), nil
	default:
		return nil, usageErrorf("--log-format: %q is not one of auto, text, json", format)
	}
}

// isTerminal reports whether w is a terminal (a person is watching).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// loadConfig reads the config from --config, else $CHIMPORT_CONFIG, else
// ./chimport.yaml. Any of them may be a local path or an s3://bucket/key URL.
func loadConfig(ctx context.Context, e env, opts *globalOptions) (*config.Config, error) {
	location := opts.configPath
	if location == "" {
		if p, ok := e.lookupEnv("CHIMPORT_CONFIG"); ok && p != "" {
			location = p
		} else {
			location = defaultConfigPath
		}
	}
	cfg, err := configsource.Load(ctx, location, e.lookupEnv)
	var cfgErr *config.Error
	if err != nil && !errors.As(err, &cfgErr) {
		// A config that cannot be read is a config problem too: exit 2,
		// without the usage hint.
		return nil, setupError{err}
	}
	return cfg, err
}
