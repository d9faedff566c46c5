package state

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ErrBadURL is wrapped by every error about the form of a `state:` URL, so
// the CLI can report it as a configuration mistake.
var ErrBadURL = errors.New("state: bad store URL")

const urlForms = "sqlite://FILE (relative to the current directory), sqlite:///ABSOLUTE/FILE " +
	"or dynamodb://?region=R&history_table=T&failures_table=U&runs_table=V (every parameter optional)"

// Open opens the store named by a config `state:` URL:
//
//	sqlite://chimport.db                 chimport.db in the current directory
//	sqlite://data/chimport.db            a relative path
//	sqlite:///var/lib/chimport/state.db  an absolute path
//	dynamodb://                          DynamoDB, default tables, the SDK's region
//	dynamodb://?region=eu-west-1&history_table=T&failures_table=U&runs_table=V
//
// Everything after "sqlite://" is the file path, taken literally (no
// percent-decoding, no query parameters). A SQLite file is created when
// missing; DynamoDB tables are not (see Init), and opening fails, naming
// `chimport init`, when one is missing.
func Open(ctx context.Context, rawURL string) (Store, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if loc.dynamo != nil {
		s, err := OpenDynamoDB(ctx, *loc.dynamo)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := OpenSQLite(ctx, loc.sqlitePath)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ValidateURL reports whether rawURL is a `state:` URL Open understands,
// without opening anything, so configuration can be checked offline.
func ValidateURL(rawURL string) error {
	_, err := parseURL(rawURL)
	return err
}

// location is a parsed `state:` URL: a SQLite path, or (dynamo non-nil) a
// DynamoDB configuration with every default filled in.
type location struct {
	sqlitePath string
	dynamo     *DynamoDBConfig
}

func parseURL(rawURL string) (location, error) {
	bad := func(format string, args ...any) (location, error) {
		return location{}, fmt.Errorf("%w %q: %s; want %s", ErrBadURL, rawURL, fmt.Sprintf(format, args...), urlForms)
	}
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return bad("no scheme")
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		if rest == "" {
			return bad("no file path")
		}
		if strings.ContainsRune(rest, '?') {
			return bad("query parameters are not supported for sqlite")
		}
		return location{sqlitePath: rest}, nil
	case "dynamodb":
		cfg, err := parseDynamoDBQuery(rest)
		if err != nil {
			return bad("%v", err)
		}
		return location{dynamo: &cfg}, nil
	default:
		return bad("unsupported scheme %q", scheme)
	}
}

// dynamoDBParams maps each query parameter of a dynamodb:// URL to the
// field it sets.
var dynamoDBParams = map[string]func(*DynamoDBConfig) *string{
	"region":         func(c *DynamoDBConfig) *string { return &c.Region },
	"history_table":  func(c *DynamoDBConfig) *string { return &c.HistoryTable },
	"failures_table": func(c *DynamoDBConfig) *string { return &c.FailuresTable },
	"runs_table":     func(c *DynamoDBConfig) *string { return &c.RunsTable },
}

// regionPattern is loose on purpose: new regions appear, and local
// emulators accept made-up ones. It only keeps URL debris out.
var regionPattern = regexp.MustCompile(`^[a-zA-Z0-9-]+$`)

// parseDynamoDBQuery reads what follows "dynamodb://". Settings live only in
// the query: a host part would be ambiguous (a table? a region?), so it is
// refused rather than guessed at.
func parseDynamoDBQuery(rest string) (DynamoDBConfig, error) {
	host, query, _ := strings.Cut(rest, "?")
	if host != "" && host != "/" {
		return DynamoDBConfig{}, fmt.Errorf("unexpected %q after dynamodb://: settings go in query parameters", host)
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return DynamoDBConfig{}, fmt.Errorf("query: %w", err)
	}
	var cfg DynamoDBConfig
	for key, vals := range values {
		field, known := dynamoDBParams[key]
		switch {
		case !known:
			return DynamoDBConfig{}, fmt.Errorf("unknown parameter %q (known: region, history_table, failures_table, runs_table)", key)
		case len(vals) > 1:
			return DynamoDBConfig{}, fmt.Errorf("parameter %q given %d times", key, len(vals))
		case vals[0] == "":
			return DynamoDBConfig{}, fmt.Errorf("parameter %q is empty", key)
		}
		*field(&cfg) = vals[0]
	}
	if cfg.Region != "" && !regionPattern.MatchString(cfg.Region) {
		return DynamoDBConfig{}, fmt.Errorf("region %q is not a region name", cfg.Region)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validateTables(); err != nil {
		return DynamoDBConfig{}, err
	}
	return cfg, nil
}
