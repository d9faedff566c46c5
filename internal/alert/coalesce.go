package alert

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// Coalesced is a Notifier for connections that come in groups: the
// audiences of one configured connection (list_id "*" or a list of ids),
// which share its credentials. When they fail alike (a revoked access
// token fails every one of them with the same 401, then makes every one
// lag), a person hears once per group and kind of problem, not once per
// audience: of the alerts of one group with the same kind (and, for an
// error that needs a person, the same status and problem), the first is
// sent and the others wait quietly, in the log, while it is open. A quiet
// connection's recovery notice stays quiet too; the notified one's is sent,
// and the next such alert of the group is sent again. Connections outside
// every group pass straight through, as do rejected-records alerts, which
// are about each audience's own records.
//
// It remembers what it sent in memory, for the life of the process. A
// process that did not see an incident open (`chimport run` is one process
// per run) knows nothing of who alerted; of the recovery notices of one
// group and kind it cannot place, it sends the first and keeps the others
// quiet until the group alerts on that kind again.
type Coalesced struct {
	Next Notifier
	// Group returns the group of a connection, "" for none.
	Group  func(connection string) string
	Logger *slog.Logger // nil discards

	mu     sync.Mutex
	open   map[string]string // group problem -> the connection that alerted on it
	quiet  map[string]string // connection + kind -> the group problem it was quiet about
	record map[string]string // connection + kind -> the group problem it alerted on
}

// Notify implements Notifier.
func (c *Coalesced) Notify(ctx context.Context, a Alert) error {
	send, why := c.admit(a)
	if !send {
		if c.Logger != nil {
			c.Logger.Info("alert not sent: another audience of the same connection alerted on the same problem",
				"connection", a.Connection, "kind", string(a.Kind), "alerted", why)
		}
		return nil
	}
	return c.Next.Notify(ctx, a)
}

// admit says whether a goes out, and if not, which connection's alert
// stands for it.
func (c *Coalesced) admit(a Alert) (bool, string) {
	group := ""
	if c.Group != nil {
		group = c.Group(a.Connection)
	}
	kind := a.Kind
	if kind == KindRecovered {
		kind = a.Resolves
	}
	if group == "" || (kind != KindPermanentError && kind != KindLag) {
		return true, ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open, c.quiet, c.record = map[string]string{}, map[string]string{}, map[string]string{}
	}
	self := a.Connection + "\x00" + string(kind)
	recovery := group + "\x00" + string(kind) + "\x00recovered"
	if a.Kind == KindRecovered {
		if p, ok := c.quiet[self]; ok {
			delete(c.quiet, self)
			return false, c.open[p]
		}
		if p, ok := c.record[self]; ok {
			delete(c.record, self)
			if c.open[p] == a.Connection {
				delete(c.open, p)
			}
		} else if first, ok := c.open[recovery]; ok && first != a.Connection {
			return false, first
		}
		c.open[recovery] = a.Connection
		return true, ""
	}
	delete(c.open, recovery) // a new incident: its recovery will be news
	problem := group + "\x00" + string(kind)
	if kind == KindPermanentError {
		problem += fmt.Sprintf("\x00%d\x00%s", a.Status, a.Problem)
	}
	if first, ok := c.open[problem]; ok && first != a.Connection {
		c.quiet[self] = problem
		return false, first
	}
	c.open[problem] = a.Connection
	c.record[self] = problem
	delete(c.quiet, self) // what it says now is its own
	return true, ""
}
