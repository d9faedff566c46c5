package schedule

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"os"
	"time"

	"github.com/adhocore/gronx"

	"github.com/chimport/chimport/internal/clock"
)

// Defaults applied by Config.WithDefaults and New to zero fields.
const (
	DefaultEvery       = 90 * time.Minute // the original importer's period
	DefaultLeaseTTL    = 2 * time.Minute
	MinLeaseTTL        = time.Second
	DefaultMaxParallel = 16
	// DefaultGrace leaves a run time to reach a checkpoint while the whole
	// shutdown stays within the 10 s a container runtime usually allows
	// between SIGTERM and SIGKILL.
	DefaultGrace = 8 * time.Second
	// MaxJitter caps DefaultJitter: spreading starts over five minutes is
	// enough, and keeps a run's period close to what was configured.
	MaxJitter = 5 * time.Minute
)

// Connection is one connection's schedule.
type Connection struct {
	Name string
	// Every is the period between runs. Zero means DefaultEvery. Ignored
	// when Cron is set.
	Every time.Duration
	// Cron, when set, runs the connection on this expression instead
	// (gronx syntax: 5 fields, or 6 with seconds first, or @hourly...).
	Cron string
}

// Config configures a Scheduler. Zero fields take their defaults (see
// WithDefaults); Leases and Run are required.
type Config struct {
	// Owner identifies this worker in leases. It must be unique to this
	// Scheduler: the store lets an owner re-claim its own lease. Empty
	// means DefaultOwner().
	Owner string
	// Clock tells the time and waits. Nil means clock.Real{}.
	Clock clock.Clock
	// Leases is the shared store's lease table and run record.
	Leases Leases
	// LeaseTTL is how long a claim lasts unless renewed; a live run renews
	// it every LeaseTTL/3, so two renewals may fail before it is lost. It
	// is also how long a dead worker's connections wait before another
	// worker takes them over. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// MaxParallel caps the runs in flight in this worker. Zero means
	// DefaultMaxParallel.
	MaxParallel int
	// Grace is how long runs in flight may go on after Run's context ends
	// before their own context is cancelled. Zero means DefaultGrace.
	Grace time.Duration
	// Location is the time zone cron expressions are read in. Nil means
	// UTC, so that workers on hosts in different zones plan alike.
	Location *time.Location
	// Jitter returns a connection's fixed offset added to every planned
	// run, given the period (for cron, the gap between the next two ticks).
	// It must return the same value for the same arguments in every
	// worker, or workers would plan different times. Nil means
	// DefaultJitter.
	Jitter func(name string, every time.Duration) time.Duration
	// Logger receives run failures and lease trouble (warn) and each
	// scheduling decision (debug). Nil discards.
	Logger *slog.Logger
	// Run runs one connection while this worker holds lease. Its context
	// is cancelled if the lease is lost, or when the shutdown grace ends.
	// It should record the attempt (the store's LastAttempt) as it starts:
	// the other workers plan from it.
	Run func(ctx context.Context, name string, lease Lease) error
	// OnSchedule, if set, is told each connection's next planned run
	// whenever it changes (for the status page and metrics). It is called
	// from several goroutines and must not block.
	OnSchedule func(name string, next time.Time)
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Owner == "" {
		c.Owner = DefaultOwner()
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.MaxParallel <= 0 {
		c.MaxParallel = DefaultMaxParallel
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.Jitter == nil {
		c.Jitter = DefaultJitter
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate reports what WithDefaults cannot fill in, and the connections'
// mistakes, all at once. It returns the connections with defaults applied.
func (c Config) validate(conns []Connection) ([]Connection, error) {
	var errs []error
	if c.Leases == nil {
		errs = append(errs, errors.New("schedule: Config.Leases is required"))
	}
	if c.Run == nil {
		errs = append(errs, errors.New("schedule: Config.Run is required"))
	}
	if c.LeaseTTL < MinLeaseTTL {
		// Renewing every TTL/3 must leave a store call time to answer.
		errs = append(errs, fmt.Errorf("schedule: Config.LeaseTTL %s is shorter than %s", c.LeaseTTL, MinLeaseTTL))
	}
	now := c.Clock.Now().In(c.Location)
	seen := make(map[string]bool, len(conns))
	out := make([]Connection, 0, len(conns))
	for i, conn := range conns {
		switch {
		case conn.Name == "":
			errs = append(errs, fmt.Errorf("schedule: connection %d has no name", i))
			continue
		case seen[conn.Name]:
			// Two loops for one name would overlap runs in this worker,
			// and the store would not stop them: same owner.
			errs = append(errs, fmt.Errorf("schedule: connection %q is listed twice", conn.Name))
			continue
		}
		seen[conn.Name] = true
		if conn.Cron != "" {
			if err := ValidateCron(conn.Cron, now); err != nil {
				errs = append(errs, fmt.Errorf("schedule: connection %q: %w", conn.Name, err))
			}
		} else if conn.Every < 0 {
			errs = append(errs, fmt.Errorf("schedule: connection %q: every %s is negative", conn.Name, conn.Every))
		}
		if conn.Every == 0 {
			conn.Every = DefaultEvery
		}
		out = append(out, conn)
	}
	return out, errors.Join(errs...)
}

// ValidateCron reports whether expr is a cron expression the scheduler
// accepts: valid gronx syntax, with a tick still to come after now. The
// config package can call it to name the offending field.
func ValidateCron(expr string, now time.Time) error {
	if !gronx.IsValid(expr) {
		return fmt.Errorf("invalid cron expression %q", expr)
	}
	// Valid syntax can still never fire ("0 0 30 2 *", a past year).
	if _, err := gronx.NextTickAfter(expr, now, false); err != nil {
		return fmt.Errorf("cron expression %q never fires: %v", expr, err)
	}
	return nil
}

// DefaultOwner returns "host-pid-random". The random part matters: in a
// container every process is PID 1 on a fresh host name that may repeat,
// and a restarted worker must not pass for its predecessor, whose lease the
// store would let it re-claim while the predecessor's run may still write.
func DefaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return fmt.Sprintf("%s-%d-%x", host, os.Getpid(), b)
}

// DefaultJitter returns a stable offset in [0, min(every/10, MaxJitter))
// from a hash of name. It is the same in every process and every release:
// SHA-256, not a seeded map hash, because workers must agree on it.
func DefaultJitter(name string, every time.Duration) time.Duration {
	bound := min(every/10, MaxJitter)
	if bound <= 0 {
		return 0
	}
	sum := sha256.Sum256([]byte(name))
	// The high word of hash*bound is uniform in [0, bound): no modulo bias.
	hi, _ := bits.Mul64(binary.BigEndian.Uint64(sum[:8]), uint64(bound))
	return time.Duration(hi)
}
