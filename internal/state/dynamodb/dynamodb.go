package dynamodb

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/chimport/chimport/internal/state"
)

// Default table names. The first two are the original Python importer's,
// so chimport picks up where it left off (see Store.Connection).
const (
	DefaultHistoryTable  = "mailchimp-list-import-history"
	DefaultFailuresTable = "mailchimp-failed-imports"
	DefaultRunsTable     = "chimport-run-history"
)

// ErrNotInitialized is wrapped when the store's tables do not exist yet:
// `chimport init` creates them.
var ErrNotInitialized = errors.New("state store is not initialized")

// Config says where the DynamoDB store lives. Endpoint and
// credentials always come from the AWS SDK's standard environment
// (AWS_ENDPOINT_URL_DYNAMODB, AWS_PROFILE, the task role, ...).
type Config struct {
	// Region overrides the SDK's region (AWS_REGION, the profile) when set.
	Region string
	// Table names; "" means the Default*Table above.
	HistoryTable, FailuresTable, RunsTable string
}

func (c Config) withDefaults() Config {
	c.HistoryTable = cmp.Or(c.HistoryTable, DefaultHistoryTable)
	c.FailuresTable = cmp.Or(c.FailuresTable, DefaultFailuresTable)
	c.RunsTable = cmp.Or(c.RunsTable, DefaultRunsTable)
	return c
}

// validateTables checks the names DynamoDB would reject, before any request
// is made, and refuses one table for two purposes: their key schemas differ.
func (c Config) validateTables() error {
	seen := map[string]string{}
	for _, t := range c.tables() {
		if !tableNamePattern.MatchString(t.name) {
			return fmt.Errorf("%s table name %q: want 3 to 255 of a-z A-Z 0-9 _ . -", t.purpose, t.name)
		}
		if other, dup := seen[t.name]; dup {
			return fmt.Errorf("%s and %s tables are both %q", other, t.purpose, t.name)
		}
		seen[t.name] = t.purpose
	}
	return nil
}

// Store is the state.Store for deployments with several workers: three
// DynamoDB tables, shared by every worker. The package doc describes the
// layout and how it keeps the watermark from moving backwards.
type Store struct {
	client *dynamodb.Client
	cfg    Config // region and every table name filled in

	// handle and runSeq make run ids unique across handles and ordered
	// within one (see runID).
	handle uint64
	runSeq atomic.Uint64

	keepRuns, keepFailures int // retention per connection; see the package doc
	trimEvery              int // appends between trims; changed only by tests

	// The roster's writes (roster.go). now is the clock of delta keys, and
	// of nothing that is recorded; tests set it. rosterMu guards the rest:
	// lastGroup, the newest delta time this handle used; kept, the
	// connections whose RosterKept this handle wrote; unfolded, what it
	// wrote to each connection since it last folded it.
	now             func() time.Time
	foldAfterBytes  int64 // see the constant of that name; changed only by tests
	foldAfterGroups int
	noTidy          bool
	rosterMu        sync.Mutex
	lastGroup       uint64
	kept            map[string]bool
	unfolded        map[string]unfoldedWrites
}

var _ state.Store = (*Store)(nil)

// Open opens the DynamoDB store. It checks that the three tables
// exist with the key schemas chimport needs, so a missing `chimport init`
// shows up now rather than at the first write.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateTables(); err != nil {
		return nil, fmt.Errorf("state: dynamodb: %w", err)
	}
	client, cfg, err := newClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand documents it)
	s := &Store{
		client:       client,
		cfg:          cfg,
		handle:       binary.BigEndian.Uint64(id[:]),
		keepRuns:     state.KeepRuns,
		keepFailures: state.KeepFailures,
		trimEvery:    100,

		now:             time.Now,
		foldAfterBytes:  foldAfterBytes,
		foldAfterGroups: foldAfterGroups,
		kept:            map[string]bool{},
		unfolded:        map[string]unfoldedWrites{},
	}
	for _, t := range cfg.tables() {
		if _, err := s.describe(ctx, t); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// newClient loads the SDK's standard configuration, with cfg.Region
// taking precedence, and returns cfg with the region it resolved to.
func newClient(ctx context.Context, cfg Config) (*dynamodb.Client, Config, error) {
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, cfg, fmt.Errorf("state: dynamodb: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, cfg, errors.New(`state: dynamodb: no AWS region: set AWS_REGION or add "region=" to the state URL`)
	}
	cfg.Region = awsCfg.Region
	return dynamodb.NewFromConfig(awsCfg), cfg, nil
}

// Config returns the configuration in use: the resolved region and the
// three table names.
func (s *Store) Config() Config { return s.cfg }

// Close implements state.Store. The SDK client holds nothing that needs closing.
func (s *Store) Close() error { return nil }

// Connection implements state.Store. An item the original Python importer wrote
// ({ListId, LastImportTime}) and chimport never completed a run for yields
// its LastImportTime as the watermark: an operator who names a connection
// after its Mailchimp list id carries the old importer's progress over.
func (s *Store) Connection(ctx context.Context, name string) (state.ConnectionState, error) {
	if name == "" { // no such item can exist: DynamoDB refuses empty keys
		return state.ConnectionState{}, ctx.Err()
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.cfg.HistoryTable,
		Key:            map[string]types.AttributeValue{attrListID: str(name)},
		ConsistentRead: aws.Bool(true), // a reader must never see the watermark go back
	})
	if err != nil {
		return state.ConnectionState{}, s.opError("read connection", name, s.cfg.HistoryTable, err)
	}
	if out.Item == nil {
		return state.ConnectionState{Connection: name}, nil
	}
	c, err := decodeConnection(out.Item)
	if err != nil {
		return state.ConnectionState{}, s.opError("read connection", name, s.cfg.HistoryTable, err)
	}
	return c, nil
}

// Connections implements state.Store: a scan of the history table, so it lists
// the original importer's lists too.
func (s *Store) Connections(ctx context.Context) ([]state.ConnectionState, error) {
	fail := func(err error) ([]state.ConnectionState, error) {
		return nil, s.opError("list connections", "", s.cfg.HistoryTable, err)
	}
	var out []state.ConnectionState
	pages := dynamodb.NewScanPaginator(s.client, &dynamodb.ScanInput{
		TableName:      &s.cfg.HistoryTable,
		ConsistentRead: aws.Bool(true),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fail(err)
		}
		for _, item := range page.Items {
			c, err := decodeConnection(item)
			if err != nil {
				return fail(err)
			}
			out = append(out, c)
		}
	}
	// Byte order, as Go compares strings (and as SQLite's ORDER BY does).
	slices.SortFunc(out, func(a, b state.ConnectionState) int { return cmp.Compare(a.Connection, b.Connection) })
	return out, nil
}

// Failures implements state.Store. The failures table holds only pending
// failures (resolved ones are deleted), in range-key order, which is the
// order of their times.
func (s *Store) Failures(ctx context.Context, name string) ([]state.Failure, error) {
	if name == "" {
		return nil, ctx.Err()
	}
	var out []state.Failure
	pages := dynamodb.NewQueryPaginator(s.client, &dynamodb.QueryInput{
		TableName:                 &s.cfg.FailuresTable,
		KeyConditionExpression:    aws.String("#id = :id"),
		ExpressionAttributeNames:  map[string]string{"#id": attrListID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(name)},
		ConsistentRead:            aws.Bool(true),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.opError("read failures", name, s.cfg.FailuresTable, err)
		}
		for _, item := range page.Items {
			f, err := decodeFailure(item)
			if err != nil {
				return nil, s.opError("read failures", name, s.cfg.FailuresTable, err)
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// Runs implements state.Store: newest first is a descending query on the
// run id, below the roster's items.
func (s *Store) Runs(ctx context.Context, name string, limit int) ([]state.Run, error) {
	if limit <= 0 || name == "" {
		return nil, ctx.Err()
	}
	var out []state.Run
	pages := dynamodb.NewQueryPaginator(s.client, &dynamodb.QueryInput{
		TableName:                 &s.cfg.RunsTable,
		KeyConditionExpression:    aws.String("#id = :id AND #run < :roster"),
		ExpressionAttributeNames:  map[string]string{"#id": attrListID, "#run": attrRunID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(name), ":roster": str(rosterPrefix)},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(min(limit, 1000))),
		ConsistentRead:            aws.Bool(true),
	})
	for pages.HasMorePages() && len(out) < limit {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.opError("read runs", name, s.cfg.RunsTable, err)
		}
		for _, item := range page.Items {
			r, err := decodeRun(item)
			if err != nil {
				return nil, s.opError("read runs", name, s.cfg.RunsTable, err)
			}
			out = append(out, r)
		}
	}
	return out[:min(len(out), limit)], nil
}

// opError is every error a Store method returns: it names the store,
// the operation, the connection (if any) and the table. A missing table
// comes back as the advice to run `chimport init`, which says it all.
func (s *Store) opError(op, name, table string, err error) error {
	err = tableError(table, s.cfg.Region, err)
	var missing *missingTableError
	if errors.As(err, &missing) {
		return missing
	}
	if name == "" {
		return fmt.Errorf("state: dynamodb: %s: %w", op, err)
	}
	return fmt.Errorf("state: dynamodb: %s for %q: %w", op, name, err)
}

// missingTableError names the table and the region it was looked for in,
// and what to do about it.
type missingTableError struct{ table, region string }

func (e *missingTableError) Error() string {
	return fmt.Sprintf("state: table %q does not exist (region %s): run \"chimport init\"", e.table, e.region)
}

func (e *missingTableError) Is(target error) bool { return target == ErrNotInitialized }

// tableError puts the table name on an SDK error (the SDK's own messages
// name the operation, not the table) and turns "no such table" into
// advice. Errors of this package's own making (table is "") pass as they
// are.
func tableError(table, region string, err error) error {
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		return &missingTableError{table: table, region: region}
	case table == "":
		return err
	}
	return fmt.Errorf("table %q: %w", table, err)
}
