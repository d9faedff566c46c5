package postgres

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chimport/chimport/internal/state"
)

// forms describes this store's URLs in every bad-URL error.
const forms = "postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=require&schema=S (postgresql:// too; libpq's parameters and PG* variables apply; schema defaults to chimport)"

func init() {
	state.Register(state.Driver{
		Schemes: []string{"postgres", "postgresql"},
		Forms:   forms,
		Validate: func(loc string) error {
			_, err := parse(loc)
			return err
		},
		Open: func(ctx context.Context, loc string) (state.Store, error) {
			cfg, err := parse(loc)
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
			cfg, err := parse(loc)
			if err != nil {
				return state.InitReport{}, err
			}
			return Init(ctx, cfg)
		},
		Check: func(ctx context.Context, loc string) error {
			cfg, err := parse(loc)
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

// DefaultSchema is where the tables live unless the URL says ?schema=.
const DefaultSchema = "chimport"

// Defaults a URL may override with parameters of the same name.
const (
	// defaultStatementTimeout bounds every statement on the server. The
	// store's statements touch a few rows each, or read one roster; one
	// that takes longer is stuck behind a lock or a sick server, and
	// failing lets the run retry.
	defaultStatementTimeout = 30 * time.Second
	// defaultIdleInTransaction ends the session of a worker that froze in
	// the middle of a transaction, so its row locks do not hold up the
	// others.
	defaultIdleInTransaction = time.Minute
	// defaultConnectTimeout bounds each attempt to reach the server.
	defaultConnectTimeout = 10 * time.Second
	// defaultMaxConns is the pool size per process: a worker runs a
	// handful of connections at once, and each store call holds a
	// database connection only for its few statements.
	defaultMaxConns = 8
)

// Config says where the store is.
type Config struct {
	// Pool is pgxpool's configuration, from the URL and the PG*
	// environment variables, with chimport's defaults filled in.
	Pool *pgxpool.Config
	// Schema holds the tables.
	Schema string
}

// schemaPattern is the identifiers a schema may have without quoting, and
// no longer than PostgreSQL keeps (63 bytes).
var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// parse reads what follows "postgres://" into a Config. The schema
// parameter is chimport's own and is taken out; everything else is
// libpq's, which pgx reads (along with PGHOST, PGPASSWORD, ~/.pgpass and
// the rest), and which a server would refuse if pgx passed an unknown one
// on as a setting.
func parse(loc string) (Config, error) {
	cfg := Config{Schema: DefaultSchema}
	base, query, _ := strings.Cut(loc, "?")
	values, err := url.ParseQuery(query)
	if err != nil {
		return Config{}, fmt.Errorf("query: %w", err)
	}
	if vals, ok := values["schema"]; ok {
		if len(vals) > 1 {
			return Config{}, fmt.Errorf("parameter %q given %d times", "schema", len(vals))
		}
		if !schemaPattern.MatchString(vals[0]) {
			return Config{}, fmt.Errorf("schema %q: want a lower-case name of letters, digits and _ (at most 63)", vals[0])
		}
		cfg.Schema = vals[0]
		values.Del("schema")
	}
	pool, err := pgxpool.ParseConfig("postgres://" + base + "?" + values.Encode())
	if err != nil {
		return Config{}, fmt.Errorf("%s", hidePassword(err.Error(), loc))
	}
	// chimport's defaults, for what neither the URL nor the environment
	// set.
	if !values.Has("pool_max_conns") {
		pool.MaxConns = defaultMaxConns
	}
	if pool.ConnConfig.ConnectTimeout == 0 {
		pool.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	params := pool.ConnConfig.RuntimeParams
	for key, value := range map[string]string{
		"statement_timeout":                   fmt.Sprint(defaultStatementTimeout.Milliseconds()),
		"idle_in_transaction_session_timeout": fmt.Sprint(defaultIdleInTransaction.Milliseconds()),
		"application_name":                    "chimport",
	} {
		if params[key] == "" {
			params[key] = value
		}
	}
	// The tables are found through the search path, so no statement
	// names the schema.
	pool.ConnConfig.RuntimeParams["search_path"] = cfg.Schema
	cfg.Pool = pool
	return cfg, nil
}

// hidePassword blanks the URL's password out of msg: pgx quotes the
// string it could not parse.
func hidePassword(msg, loc string) string {
	u, err := url.Parse("postgres://" + loc)
	if err != nil || u.User == nil {
		return msg
	}
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "REDACTED")
		msg = strings.ReplaceAll(msg, url.QueryEscape(p), "REDACTED")
	}
	return msg
}
