package dynamodb

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/chimport/chimport/internal/state"
)

// forms describes this store's URLs in every bad-URL error.
const forms = "dynamodb://?region=R&history_table=T&failures_table=U&runs_table=V (every parameter optional)"

func init() {
	state.Register(state.Driver{
		Schemes: []string{"dynamodb"},
		Forms:   forms,
		Validate: func(loc string) error {
			_, err := parseQuery(loc)
			return err
		},
		Open: func(ctx context.Context, loc string) (state.Store, error) {
			cfg, err := parseQuery(loc)
			if err != nil {
				return nil, err
			}
			s, err := Open(ctx, cfg)
			if err != nil {
				return nil, err // not a nil *Store in a non-nil interface
			}
			return s, nil
		},
		Init: func(ctx context.Context, loc string) (state.InitReport, error) {
			cfg, err := parseQuery(loc)
			if err != nil {
				return state.InitReport{}, err
			}
			return initTables(ctx, cfg)
		},
		// Open only describes the tables, so opening is the check.
		Check: func(ctx context.Context, loc string) error {
			cfg, err := parseQuery(loc)
			if err != nil {
				return err
			}
			s, err := Open(ctx, cfg)
			if err != nil {
				return err
			}
			return s.Close()
		},
	})
}

// params maps each query parameter of a dynamodb:// URL to the field it
// sets.
var params = map[string]func(*Config) *string{
	"region":         func(c *Config) *string { return &c.Region },
	"history_table":  func(c *Config) *string { return &c.HistoryTable },
	"failures_table": func(c *Config) *string { return &c.FailuresTable },
	"runs_table":     func(c *Config) *string { return &c.RunsTable },
}

// regionPattern is loose on purpose: new regions appear, and local
// emulators accept made-up ones. It only keeps URL debris out.
var regionPattern = regexp.MustCompile(`^[a-zA-Z0-9-]+$`)

// parseQuery reads what follows "dynamodb://" into a Config with every
// default filled in. Settings live only in the query: a host part would
// be ambiguous (a table? a region?), so it is refused rather than guessed
// at.
func parseQuery(loc string) (Config, error) {
	host, query, _ := strings.Cut(loc, "?")
	if host != "" && host != "/" {
		return Config{}, fmt.Errorf("unexpected %q after dynamodb://: settings go in query parameters", host)
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return Config{}, fmt.Errorf("query: %w", err)
	}
	var cfg Config
	for key, vals := range values {
		field, known := params[key]
		switch {
		case !known:
			return Config{}, fmt.Errorf("unknown parameter %q (known: region, history_table, failures_table, runs_table)", key)
		case len(vals) > 1:
			return Config{}, fmt.Errorf("parameter %q given %d times", key, len(vals))
		case vals[0] == "":
			return Config{}, fmt.Errorf("parameter %q is empty", key)
		}
		*field(&cfg) = vals[0]
	}
	if cfg.Region != "" && !regionPattern.MatchString(cfg.Region) {
		return Config{}, fmt.Errorf("region %q is not a region name", cfg.Region)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validateTables(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
