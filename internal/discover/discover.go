// Package discover turns the connections of a config into the connections
// a run syncs: each one whose list_id is "*" becomes one sub-connection per
// audience its Mailchimp account has right now (config.Connection.Sub,
// named <name>.<list_id>), found with GET /lists at every run. An audience
// that appears is synced from scratch, since its sub-connection has no
// state yet; one that disappears is reported, and its state is kept (an
// audience can come back, and its state says what the target holds).
package discover

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/mailchimp"
)

// Lister is what discovery needs of Mailchimp: the audiences of one
// account. *mailchimp.Client is one.
type Lister interface {
	Lists(ctx context.Context) ([]mailchimp.ListSummary, error)
}

var _ Lister = (*mailchimp.Client)(nil)

// Options says how to discover.
type Options struct {
	// Lister returns the account's lister for a "*" connection (its
	// credentials, base URL and limiter).
	Lister func(config.Connection) (Lister, error)
	// Confirm, if set, asks whether an audience the listing left out,
	// but the store knows, is really gone: a listing paged while
	// audiences come and go can miss one. gone false keeps it syncing;
	// an error too (its run then says what is wrong).
	Confirm func(c config.Connection, listID string) (gone bool, err error)
	// Known are the connection names the state store has state for: a
	// sub-connection among them whose audience is gone is Vanished.
	Known []string
	// Names keeps only these connections (the --connection flag): a
	// name selects a connection, or every sub-connection of the
	// connection it names. Empty keeps all.
	Names []string
	// Parallel bounds the accounts listed at once (default 16).
	Parallel int
}

// Failure is a "*" connection whose audiences could not be listed: none of
// its sub-connections runs, and the caller reports Err under the
// connection's own name.
type Failure struct {
	Connection config.Connection
	Err        error
}

// Vanished is a sub-connection the state store knows whose audience the
// account no longer lists.
type Vanished struct {
	Name, Parent, ListID string
}

// Result is what Expand found.
type Result struct {
	// Connections are the connections to sync, in the config's order,
	// each "*" one replaced by its sub-connections sorted by list id.
	Connections []config.Connection
	Failed      []Failure
	Vanished    []Vanished
	// Unusable are audiences whose id cannot name a connection
	// (Mailchimp's are 10 hex digits; this one is not letters, digits, _
	// and - or is longer than 64), left out; Name is empty and ListID is
	// quoted and clipped, safe to log.
	Unusable []Vanished
}

// Expand lists the audiences of every connection in conns that discovers
// and returns the connections to sync. Connections that do not discover
// pass through unchanged (Names still applies).
func Expand(ctx context.Context, conns []config.Connection, opts Options) Result {
	if opts.Parallel < 1 {
		opts.Parallel = 16
	}
	found := make([][]mailchimp.ListSummary, len(conns))
	errs := make([]error, len(conns))
	var g errgroup.Group
	g.SetLimit(opts.Parallel)
	for i, c := range conns {
		if !c.Discovers() {
			continue
		}
		g.Go(func() error {
			found[i], errs[i] = listAudiences(ctx, c, opts.Lister)
			return nil
		})
	}
	_ = g.Wait()

	var res Result
	keep := Selector(opts.Names)
	for i, c := range conns {
		if !c.Discovers() {
			if keep(c.Name, c.Parent) {
				res.Connections = append(res.Connections, c)
			}
			continue
		}
		if errs[i] != nil {
			if keep(c.Name, "") {
				res.Failed = append(res.Failed, Failure{Connection: c, Err: errs[i]})
			}
			continue
		}
		live := make(map[string]bool, len(found[i]))
		ids := make([]string, 0, len(found[i]))
		for _, l := range found[i] {
			if !validID(l.ID) {
				res.Unusable = append(res.Unusable, Vanished{Parent: c.Name, ListID: clip(l.ID)})
				continue
			}
			live[config.SubName(c.Name, l.ID)] = true
			ids = append(ids, l.ID)
		}
		prefix := c.Name + "."
		for _, name := range opts.Known {
			id, ok := strings.CutPrefix(name, prefix)
			if !ok || live[name] || !keep(name, c.Name) {
				continue
			}
			if opts.Confirm != nil {
				if gone, err := opts.Confirm(c, id); !gone || err != nil {
					ids = append(ids, id) // still there, or unknown: keep syncing it
					continue
				}
			}
			res.Vanished = append(res.Vanished, Vanished{Name: name, Parent: c.Name, ListID: id})
		}
		slices.Sort(ids)
		for _, id := range ids {
			if sub := c.Sub(id); keep(sub.Name, c.Name) {
				res.Connections = append(res.Connections, sub)
			}
		}
	}
	return res
}

// listAudiences lists one account's audiences, sorted by id. An id that
// cannot name a sub-connection (Mailchimp's are 10 hex digits) is left out
// rather than synced under a name that state, metrics and alerts could
// not tell apart.
func listAudiences(ctx context.Context, c config.Connection, lister func(config.Connection) (Lister, error)) ([]mailchimp.ListSummary, error) {
	l, err := lister(c)
	if err != nil {
		return nil, err
	}
	lists, err := l.Lists(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the audiences of the account (list_id \"*\"): %w", err)
	}
	lists = slices.Clone(lists)
	slices.SortFunc(lists, func(a, b mailchimp.ListSummary) int { return strings.Compare(a.ID, b.ID) })
	return slices.CompactFunc(lists, func(a, b mailchimp.ListSummary) bool { return a.ID == b.ID }), nil
}

// clip quotes an id from a server for a log line, at most 64 bytes of it.
func clip(id string) string {
	if len(id) > 64 {
		id = id[:64]
	}
	return fmt.Sprintf("%q", id)
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' && r != '-' {
			return false
		}
	}
	return true
}

// Selector returns whether the --connection names select a connection
// named name, a sub-connection of parent ("" for a connection as
// configured): its own name or its parent's is among them, or, for a
// configured connection, the name of one of its sub-connections is (whose
// listing failure then concerns the caller too). No names select all.
func Selector(names []string) func(name, parent string) bool {
	if len(names) == 0 {
		return func(string, string) bool { return true }
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(name, parent string) bool {
		if set[name] || (parent != "" && set[parent]) {
			return true
		}
		if parent == "" {
			for _, n := range names {
				if strings.HasPrefix(n, name+".") {
					return true
				}
			}
		}
		return false
	}
}
