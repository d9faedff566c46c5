package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chimport/chimport/internal/mcsim"
)

type simOptions struct {
	listen       string
	targetListen string
	members      int
	seed         int64
	latency      time.Duration
	apiKey       string
	listID       string
	targetAuth   string
	churn        float64
	inclusive    bool
}

func newSimCmd(e env, global *globalOptions) *cobra.Command {
	opts := simOptions{}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Serve a Mailchimp simulator and a target simulator on loopback, for trying chimport out",
		Long: `sim serves a simulated Mailchimp Marketing API (ping, list and members endpoints)
and a simulated target API that upserts the records it receives. It prints the base
URLs, API key and list id, and a config that passes chimport check as it is
(with the --target-auth header), then serves until interrupted. The API key,
unless given, is derived from --seed, so it is the same on every start.
Port 0 picks a free port.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSim(cmd.Context(), e, global, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.listen, "listen", "127.0.0.1:8080", "address for the Mailchimp simulator")
	f.StringVar(&opts.targetListen, "target-listen", "127.0.0.1:8090", "address for the target simulator")
	f.IntVar(&opts.members, "members", 10000, "members in the simulated list")
	f.Int64Var(&opts.seed, "seed", 1, "seed for the generated members, churn and faults")
	f.DurationVar(&opts.latency, "latency", 0, "delay added to every Mailchimp request")
	f.StringVar(&opts.apiKey, "api-key", "", "API key the simulator accepts (default: one derived from --seed, printed)")
	f.StringVar(&opts.listID, "list-id", "a1b2c3d4e5", "id of the simulated list")
	f.StringVar(&opts.targetAuth, "target-auth", "", "Authorization header value the target simulator requires (default: none)")
	f.Float64Var(&opts.churn, "churn", 0, "members changed per second while serving")
	f.BoolVar(&opts.inclusive, "inclusive", false, "treat since_last_changed/before_last_changed as inclusive (default exclusive)")
	return cmd
}

func runSim(ctx context.Context, e env, global *globalOptions, opts simOptions) error {
	if opts.members < 0 {
		return usageErrorf("--members must be 0 or more, got %d", opts.members)
	}
	if opts.churn < 0 {
		return usageErrorf("--churn must be 0 or more, got %v", opts.churn)
	}
	keyNote := ""
	if opts.apiKey == "" {
		// The same seed gives the same key, so a saved config keeps working
		// across restarts.
		opts.apiKey = simAPIKey(opts.seed)
		keyNote = fmt.Sprintf(" (derived from --seed %d: the same on every start with that seed)", opts.seed)
	}
	sim := mcsim.New(mcsim.Options{
		APIKey:    opts.apiKey,
		ListID:    opts.listID,
		Members:   opts.members,
		Seed:      opts.seed,
		Latency:   opts.latency,
		Inclusive: opts.inclusive,
	})
	target := mcsim.NewTarget(mcsim.TargetOptions{Auth: opts.targetAuth, Seed: opts.seed})

	mcLn, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", opts.listen, err)
	}
	targetLn, err := net.Listen("tcp", opts.targetListen)
	if err != nil {
		mcLn.Close()
		return fmt.Errorf("--target-listen %s: %w", opts.targetListen, err)
	}

	baseURL := "http://" + mcLn.Addr().String() + "/3.0"
	targetURL := "http://" + targetLn.Addr().String() + "/records"
	fmt.Fprintf(e.stdout, `chimport sim is serving; press Ctrl-C to stop.
  mailchimp base_url: %s
  api_key:            %s%s
  list_id:            %s (%d members)
  target url:         %s
`, baseURL, opts.apiKey, keyNote, opts.listID, opts.members, targetURL)
	headers := ""
	if opts.targetAuth != "" {
		fmt.Fprintln(e.stdout, "  target requires:    the Authorization header given with --target-auth")
		headers = ", headers: {Authorization: " + yamlString(opts.targetAuth) + "}"
	}
	fmt.Fprintf(e.stdout, `
A config for it (save it as chimport.yaml, then run chimport check):
  connections:
    - name: sim
      mailchimp: {api_key: %s, list_id: %s, base_url: %s, settle: 0s}
      target: {url: %s%s}
`, yamlString(opts.apiKey), yamlString(opts.listID), yamlString(baseURL), yamlString(targetURL), headers)

	servers := []*http.Server{
		{Handler: sim, ReadHeaderTimeout: 10 * time.Second},
		{Handler: target, ReadHeaderTimeout: 10 * time.Second},
	}
	errc := make(chan error, 2)
	go func() { errc <- servers[0].Serve(mcLn) }()
	go func() { errc <- servers[1].Serve(targetLn) }()

	if opts.churn > 0 {
		go churn(ctx, sim, opts.listID, opts.churn)
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("simulator stopped: %w", err)
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shutdownCtx)
	}
	global.logger.Info("simulator stopped")
	return nil
}

// simAPIKey is the key sim accepts when --api-key is not given: derived
// from the seed alone, on a stream of its own so it does not shift the
// generated members.
func simAPIKey(seed int64) string {
	return mcsim.NewAPIKey(rand.New(rand.NewPCG(uint64(seed), 0x6b6579)))
}

// yamlString quotes s for the printed config so that pasting it gives s
// back: a YAML double-quoted string (which reads Go's escapes), with "$"
// doubled so that ${...} expansion leaves it alone.
func yamlString(s string) string {
	return strconv.Quote(strings.ReplaceAll(s, "$", "$$"))
}

// churn changes perSecond members a second until ctx ends. It ticks ten
// times a second and carries the fractional remainder, so low rates work.
func churn(ctx context.Context, sim *mcsim.Mailchimp, listID string, perSecond float64) {
	const tick = 100 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	owed := 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			owed += perSecond * tick.Seconds()
			if n := int(owed); n > 0 {
				sim.Churn(listID, n)
				owed -= float64(n)
			}
		}
	}
}
