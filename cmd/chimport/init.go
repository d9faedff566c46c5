package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/state"
)

func newInitCmd(e env, global *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create what the configured state store needs (tables or file); safe to run again",
		Long: `init creates what the state store named by the config's state: URL needs: for
DynamoDB the tables (on-demand, waiting until they are active), for SQLite the file
and its schema. It prints what it created and what already existed, and may be run
any number of times.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Context(), e, global)
			if err != nil {
				return err
			}
			return runInit(cmd.Context(), e, cfg)
		},
	}
}

func runInit(ctx context.Context, e env, cfg *config.Config) error {
	// An error matches state.ErrUnusable, so it exits 2 as run's does for
	// the same store.
	report, err := state.Init(ctx, cfg.State)
	if err != nil {
		return fmt.Errorf("init %s: %w", state.RedactPassword(cfg.State), err)
	}
	for _, what := range report.Created {
		fmt.Fprintf(e.stdout, "created  %s\n", what)
	}
	for _, what := range report.Existing {
		fmt.Fprintf(e.stdout, "exists   %s\n", what)
	}
	return nil
}
