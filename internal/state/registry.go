package state

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// ErrBadURL is wrapped by every error about the form of a `state:` URL, so
// the CLI can report it as a configuration mistake.
var ErrBadURL = errors.New("state: bad store URL")

// ErrUnusable is matched (errors.Is) by every error of Open, Init and Check
// about the store itself: a directory that is missing, tables that do not
// exist, a database that does not answer. The CLI reports them as a
// configuration problem: nothing can be synced until they are fixed. Errors
// of a cancelled context are not marked.
var ErrUnusable = errors.New("state: store unusable")

// InitReport says what Init found and what it made, in words for people:
// "sqlite file /abs/path.db (schema version 1)", "DynamoDB table
// mailchimp-failed-imports".
type InitReport struct {
	Created, Existing []string
}

// A Driver is one kind of store as the registry knows it: the URL schemes
// it serves, and how to check, open and initialise a store named by such a
// URL. Each store package registers its Driver from an init function, so a
// program has the stores whose packages it links, and nothing here names
// any of them.
//
// Every function gets loc, the part of the URL after "scheme://", taken
// literally; Open, Init and Check only ever see a loc that Validate
// accepted.
type Driver struct {
	// Schemes are the URL schemes the store serves, in lower case. URLs
	// match them in any case ("SQLite://x.db").
	Schemes []string
	// Forms describes the URLs the store accepts, for people: every
	// bad-URL error lists the Forms of every driver after "want", e.g.
	// "sqlite://FILE (relative to the current directory), sqlite:///ABSOLUTE/FILE".
	Forms string
	// Default lists Forms first: it marks the store a new user starts
	// with (the embedded SQLite). At most one driver sets it; the others
	// follow in the order of their first scheme.
	Default bool
	// Validate checks loc without opening or creating anything. Its error
	// says what is wrong in a few words ("no file path"); the registry
	// adds the URL, ErrBadURL and the forms.
	Validate func(loc string) error
	// Open opens the store.
	Open func(ctx context.Context, loc string) (Store, error)
	// Init creates what the store needs, if it is missing, and reports
	// what it created and what was already there. It must be idempotent:
	// deploy scripts run `chimport init` every time.
	Init func(ctx context.Context, loc string) (InitReport, error)
	// Check reports whether Open would succeed, creating and changing
	// nothing, for `chimport check`. Its errors read as Open's would for
	// the same problem. A driver without one cannot be checked: Check
	// then says so.
	Check func(ctx context.Context, loc string) error
}

// registry maps URL schemes to drivers. Registration happens in init
// functions, before any lookup, but the lock keeps a late Register (a
// test's) safe as well.
type registry struct {
	mu      sync.RWMutex
	schemes map[string]*Driver
	drivers []*Driver // in the order their Forms are listed
}

var drivers registry

// Register makes a store's URL schemes known to Open, Init and
// ValidateURL. It panics, as a programming error, when the driver lacks a
// field or claims a scheme (or the default) that another driver has.
func Register(d Driver) { drivers.register(d) }

// Open opens the store named by a `state:` URL, whose scheme selects the
// registered driver; the driver's package doc describes its URLs. An
// unknown scheme's error lists every registered form.
func Open(ctx context.Context, rawURL string) (Store, error) {
	d, loc, err := drivers.lookup(rawURL)
	if err != nil {
		return nil, err
	}
	st, err := d.Open(ctx, loc)
	if err != nil {
		return nil, unusable(ctx, err)
	}
	return st, nil
}

// Init creates the store named by a `state:` URL, if it does not exist
// yet, and reports what it created and what was already there, for
// `chimport init`. It is idempotent, so deploy scripts can run it every
// time.
func Init(ctx context.Context, rawURL string) (InitReport, error) {
	d, loc, err := drivers.lookup(rawURL)
	if err != nil {
		return InitReport{}, err
	}
	report, err := d.Init(ctx, loc)
	return report, unusable(ctx, err)
}

// Check reports whether the store named by a `state:` URL can be opened
// as it is, without creating or changing anything: `chimport check` runs
// it so that a store `run` would refuse fails the check instead.
func Check(ctx context.Context, rawURL string) error {
	d, loc, err := drivers.lookup(rawURL)
	if err != nil {
		return err
	}
	if d.Check == nil {
		return fmt.Errorf("state: %s stores cannot be checked without opening them", d.Schemes[0])
	}
	return unusable(ctx, d.Check(ctx, loc))
}

// ValidateURL reports whether rawURL is a `state:` URL that Open
// understands, without opening anything, so configuration can be checked
// offline.
func ValidateURL(rawURL string) error {
	_, _, err := drivers.lookup(rawURL)
	return err
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	drivers.mu.RLock()
	defer drivers.mu.RUnlock()
	var out []string
	for s := range drivers.schemes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (r *registry) register(d Driver) {
	fail := func(format string, args ...any) {
		panic(fmt.Sprintf("state: register driver %q: %s", d.Schemes, fmt.Sprintf(format, args...)))
	}
	if len(d.Schemes) == 0 || d.Forms == "" || d.Validate == nil || d.Open == nil || d.Init == nil {
		fail("Schemes, Forms, Validate, Open and Init are all required")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range d.Schemes {
		switch {
		case s == "" || s != strings.ToLower(s) || strings.Contains(s, ":"):
			fail("scheme %q: want a lower-case name without a colon", s)
		case r.schemes[s] != nil:
			fail("scheme %q is already registered", s)
		}
	}
	if d.Default && slices.ContainsFunc(r.drivers, func(o *Driver) bool { return o.Default }) {
		fail("another driver is already the default")
	}
	if r.schemes == nil {
		r.schemes = map[string]*Driver{}
	}
	for _, s := range d.Schemes {
		r.schemes[s] = &d
	}
	r.drivers = append(r.drivers, &d)
	slices.SortStableFunc(r.drivers, func(a, b *Driver) int {
		if a.Default != b.Default {
			if a.Default {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Schemes[0], b.Schemes[0])
	})
}

// unusableError marks a driver's error with ErrUnusable and keeps its text.
type unusableError struct{ err error }

func (e unusableError) Error() string        { return e.err.Error() }
func (e unusableError) Unwrap() error        { return e.err }
func (e unusableError) Is(target error) bool { return target == ErrUnusable }

func unusable(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	return unusableError{err}
}

// BadURLError is a `state:` URL that no registered store accepts. It
// matches ErrBadURL with errors.Is. Config validation quotes Reason and
// Want under the field name; everyone else prints Error.
type BadURLError struct {
	URL    string // as given, but with any password replaced by "REDACTED"
	Reason string // what is wrong, in a few words: "no file path"
	Want   string // every registered store's URL forms
}

func (e *BadURLError) Error() string {
	return fmt.Sprintf("%v %q: %s; want %s", ErrBadURL, e.URL, e.Reason, e.Want)
}

func (e *BadURLError) Is(target error) bool { return target == ErrBadURL }

// lookup finds the driver for rawURL and has it validate the rest, which
// it returns. Every error is a *BadURLError, which lists the forms.
func (r *registry) lookup(rawURL string) (*Driver, string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	bad := func(format string, args ...any) (*Driver, string, error) {
		return nil, "", &BadURLError{URL: RedactPassword(rawURL), Reason: fmt.Sprintf(format, args...), Want: r.forms()}
	}
	scheme, loc, ok := strings.Cut(rawURL, "://")
	if !ok {
		return bad("no scheme")
	}
	d := r.schemes[strings.ToLower(scheme)]
	if d == nil {
		return bad("unsupported scheme %q", scheme)
	}
	if err := d.Validate(loc); err != nil {
		return bad("%v", err)
	}
	return d, loc, nil
}

// forms lists every driver's Forms: "A, B or C".
func (r *registry) forms() string {
	var forms []string
	for _, d := range r.drivers {
		forms = append(forms, d.Forms)
	}
	switch n := len(forms); n {
	case 0:
		// A program (or a test) that links no store package.
		return "a registered store, but this program links none (import a package of internal/state)"
	case 1:
		return forms[0]
	default:
		return strings.Join(forms[:n-1], ", ") + " or " + forms[n-1]
	}
}

// RedactPassword hides the passwords of a URL, so the URL can be logged
// or shown in an error: the one in its user info
// (postgres://user:secret@host/db) and the values of query parameters
// that carry one (libpq's password= and sslpassword=). The rest is kept
// as given: it is what the user needs to find the mistake. The user info
// ends at the last "@" before any query, so a password holding "/" or "@"
// is hidden whole; without an "@" there, at the last "@" of all, so one
// holding a "?" is too.
func RedactPassword(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return rawURL
	}
	beforeQuery, _, _ := strings.Cut(rest, "?")
	at := strings.LastIndex(beforeQuery, "@")
	if at < 0 {
		at = strings.LastIndex(rest, "@")
	}
	// from is where the query is looked for: after the user info.
	from := 0
	if at >= 0 {
		if user, _, hasPassword := strings.Cut(rest[:at], ":"); hasPassword {
			rest = user + ":REDACTED" + rest[at:]
			from = len(user) + len(":REDACTED")
		} else if at < len(beforeQuery) {
			from = at
		}
	}
	authority, query, hasQuery := strings.Cut(rest[from:], "?")
	if !hasQuery {
		return scheme + "://" + rest
	}
	pairs := strings.Split(query, "&")
	for i, pair := range pairs {
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil && (k == "password" || k == "sslpassword") {
			pairs[i] = key + "=REDACTED"
		}
	}
	return scheme + "://" + rest[:from] + authority + "?" + strings.Join(pairs, "&")
}
