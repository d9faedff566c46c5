package postgres

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chimport/chimport/internal/state"
)

// Store is the PostgreSQL state.Store, which workers on any number of
// machines may share.
type Store struct {
	pool *pgxpool.Pool
	// known holds the names whose connections row this handle has seen
	// committed (see write).
	known sync.Map

	keepRuns, keepFailures int // changed only by tests
}

var _ state.Store = (*Store)(nil)

// Open connects to the database and checks that its schema holds this
// build's tables (`chimport init` makes them; Open never does).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	pool, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(ctx, pool, cfg.Schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("state: open postgres %s: %w", describe(cfg), explain(err))
	}
	return &Store{pool: pool, keepRuns: state.KeepRuns, keepFailures: state.KeepFailures}, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// nanos is a time.Time as a SQL value: a bigint of unix nanoseconds, NULL
// for the zero time. Passing nanos(t) as an argument and scanning into
// (*nanos)(&t) keeps the encoding in one place.
type nanos time.Time

func (t nanos) Value() (driver.Value, error) {
	n, err := state.Nanos(time.Time(t))
	if n == nil || err != nil {
		return nil, err
	}
	return *n, nil
}

func (t *nanos) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*t = nanos{}
	case int64:
		*t = nanos(state.FromNanos(&v))
	default:
		return fmt.Errorf("time column holds %T, want bigint", src)
	}
	return nil
}

// text is s as PostgreSQL can hold it: its text type takes neither NUL
// bytes nor invalid UTF-8, which a target's answer may hold, so they
// become U+FFFD. Every free-text value (errors, refusal reasons, keys)
// goes through here; names and kinds are chimport's own.
func text(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// connectionColumns reads a connection with its open alerts and the
// summary of its rejected log, in one statement and so from one snapshot.
// The sample is the latest refusal (the smallest member of those refused
// at the same instant), found by a seek into rejected_latest.
const connectionColumns = `c.name, c.watermark, c.first_attempt, c.last_attempt, c.last_success,
	c.last_error, c.last_error_at, c.last_read, c.last_delivered, c.total_delivered, c.checkpoint,
	c.kept, c.members, c.last_reconcile, c.left_count, c.default_view,
	(SELECT json_object_agg(kind, opened_at) FROM alerts a WHERE a.connection = c.name),
	(SELECT count(*) FROM rejected r WHERE r.connection = c.name),
	s.member, s.record_key, s.status, s.reason, s.first_seen, s.last_attempt, s.attempts
	FROM connections c LEFT JOIN LATERAL (
		SELECT member, record_key, status, reason, first_seen, last_attempt, attempts
		FROM rejected r WHERE r.connection = c.name
		ORDER BY last_attempt DESC, member LIMIT 1) s ON true`

func scanConnection(row pgx.Row) (state.ConnectionState, error) {
	var c state.ConnectionState
	var cp *string
	var alerts, member []byte
	var view int16
	var key, reason *string
	var status, attempts *int
	var first, last time.Time
	err := row.Scan(&c.Connection, (*nanos)(&c.Watermark), (*nanos)(&c.FirstAttempt),
		(*nanos)(&c.LastAttempt), (*nanos)(&c.LastSuccess), &c.LastError, (*nanos)(&c.LastErrorAt),
		&c.LastRead, &c.LastDelivered, &c.TotalDelivered, &cp,
		&c.Roster.Kept, &c.Roster.Members, (*nanos)(&c.Roster.LastReconcile), &c.Roster.Left, &view,
		&alerts, &c.Rejected.Count,
		&member, &key, &status, &reason, (*nanos)(&first), (*nanos)(&last), &attempts)
	if err != nil {
		return state.ConnectionState{}, err
	}
	c.Roster.DefaultView = state.DefaultView(view)
	if member != nil {
		if len(member) != len(state.MemberID{}) {
			return state.ConnectionState{}, fmt.Errorf("rejected member id of %d bytes", len(member))
		}
		c.Rejected.Sample = &state.Rejection{Member: state.MemberID(member), Key: *key, Status: *status,
			Reason: *reason, FirstSeen: first, LastAttempt: last, Attempts: *attempts}
	}
	if cp != nil {
		if c.Checkpoint, err = state.DecodeCheckpoint(*cp); err != nil {
			return state.ConnectionState{}, err
		}
	}
	if alerts != nil {
		if c.Alerts, err = decodeAlerts(alerts); err != nil {
			return state.ConnectionState{}, err
		}
	}
	return c, nil
}

// decodeAlerts reads json_object_agg's {kind: opened_at}.
func decodeAlerts(b []byte) (map[string]time.Time, error) {
	var opened map[string]int64
	if err := json.Unmarshal(b, &opened); err != nil {
		return nil, fmt.Errorf("decode alerts: %w", err)
	}
	if len(opened) == 0 {
		return nil, nil
	}
	out := make(map[string]time.Time, len(opened))
	for kind, n := range opened {
		out[kind] = state.FromNanos(&n)
	}
	return out, nil
}

// Connection implements state.Store.
func (s *Store) Connection(ctx context.Context, name string) (state.ConnectionState, error) {
	c, err := scanConnection(s.pool.QueryRow(ctx, `SELECT `+connectionColumns+` WHERE c.name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return state.ConnectionState{Connection: name}, nil
	}
	if err != nil {
		return state.ConnectionState{}, fmt.Errorf("state: read connection %q: %w", name, err)
	}
	return c, nil
}

// Connections implements state.Store.
func (s *Store) Connections(ctx context.Context) ([]state.ConnectionState, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+connectionColumns+` ORDER BY c.name`)
	if err != nil {
		return nil, fmt.Errorf("state: list connections: %w", err)
	}
	defer rows.Close()
	var out []state.ConnectionState
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, fmt.Errorf("state: list connections: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: list connections: %w", err)
	}
	return out, nil
}

// Failures implements state.Store.
func (s *Store) Failures(ctx context.Context, name string) ([]state.Failure, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT connection, window_start, window_end, view_name, page_offset, error, failed_at
		FROM failures WHERE connection = $1 AND resolved_at IS NULL ORDER BY id`, name)
	if err != nil {
		return nil, fmt.Errorf("state: read failures for %q: %w", name, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (state.Failure, error) {
		var f state.Failure
		err := row.Scan(&f.Connection, (*nanos)(&f.WindowStart), (*nanos)(&f.WindowEnd),
			&f.View, &f.Offset, &f.Error, (*nanos)(&f.At))
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("state: read failures for %q: %w", name, err)
	}
	return out, nil
}

// Runs implements state.Store.
func (s *Store) Runs(ctx context.Context, name string, limit int) ([]state.Run, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `
		SELECT connection, started, finished, window_start, window_end, full_sync, result,
			read_count, delivered_count, request_count, error
		FROM runs WHERE connection = $1 ORDER BY id DESC LIMIT $2`, name, limit)
	if err != nil {
		return nil, fmt.Errorf("state: read runs for %q: %w", name, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (state.Run, error) {
		var r state.Run
		err := row.Scan(&r.Connection, (*nanos)(&r.Started), (*nanos)(&r.Finished),
			(*nanos)(&r.WindowStart), (*nanos)(&r.WindowEnd), &r.Full, &r.Result,
			&r.Read, &r.Delivered, &r.Requests, &r.Error)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("state: read runs for %q: %w", name, err)
	}
	return out, nil
}
