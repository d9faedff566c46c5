package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
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
	// The query goes on to pgx as given, but for schema=: decoding and
	// encoding it again would turn a space into a "+", which libpq reads
	// as a plus sign.
	var rest []string
	var given []string // keys the URL sets, decoded
	schemas := 0
	for _, pair := range strings.Split(query, "&") {
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return Config{}, fmt.Errorf("query: parameter %q: %v", rawKey, err)
		}
		given = append(given, key)
		if key != "schema" {
			rest = append(rest, pair)
			continue
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return Config{}, fmt.Errorf("query: schema %q: %v", rawValue, err)
		}
		if schemas++; schemas > 1 {
			return Config{}, fmt.Errorf("parameter %q given more than once", "schema")
		}
		if err := checkSchema(value); err != nil {
			return Config{}, err
		}
		cfg.Schema = value
	}
	raw := "postgres://" + base
	if len(rest) > 0 {
		raw += "?" + strings.Join(rest, "&")
	}
	pool, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return Config{}, parseError(err)
	}
	// chimport's defaults, for what neither the URL nor the environment
	// set. A setting given in libpq's options= (or PGOPTIONS) does not
	// count: the server applies these after it.
	if !slices.Contains(given, "pool_max_conns") {
		pool.MaxConns = defaultMaxConns
	}
	if !slices.Contains(given, "connect_timeout") && os.Getenv("PGCONNECT_TIMEOUT") == "" {
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
	params["search_path"] = cfg.Schema
	cfg.Pool = pool
	return cfg, nil
}

// checkSchema refuses a schema name that needs quoting, or one of
// PostgreSQL's own.
func checkSchema(name string) error {
	switch {
	case !schemaPattern.MatchString(name):
		return fmt.Errorf("schema %q: want a lower-case name of letters, digits and _ (at most 63)", name)
	case strings.HasPrefix(name, "pg_") || name == "information_schema":
		return fmt.Errorf("schema %q is one of PostgreSQL's own", name)
	}
	return nil
}

// parseError is pgx's complaint about a URL without its quote of the
// URL, which hides the password only where pgx can find it; the bad-URL
// error around it shows the URL with every password hidden.
func parseError(err error) error {
	msg := err.Error()
	if quoted, reason, ok := strings.Cut(msg, "`: "); ok && strings.HasPrefix(quoted, "cannot parse `") {
		return fmt.Errorf("cannot parse the URL: %s", reason)
	}
	if strings.Contains(msg, "`") {
		return errors.New("cannot parse the URL")
	}
	return err
}
