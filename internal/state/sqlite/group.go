package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// Group commit. SQLite takes one writer at a time, and with hundreds of
// runs in parallel a transaction per write made them queue: each paid for
// its own BEGIN, COMMIT and WAL frames while the others waited behind it,
// and each waited to be scheduled again before the next could begin. So
// writes queue in a writeGroup instead, and one goroutine, started when a
// write finds none at work and gone once the queue is empty, takes every
// write waiting (up to maxGroup), runs them in one IMMEDIATE transaction,
// each inside its own SAVEPOINT, and commits them together, then goes on
// with the writes that queued meanwhile without waiting to be woken. One
// that fails (fenced, a constraint, its own ctx done before its turn) is
// rolled back to its savepoint and gets its own error; the others are
// unaffected. Every write is answered only once the COMMIT holding it has
// succeeded, or with an error if it failed, so what a caller is told has
// been committed is committed, exactly as with a transaction of its own,
// and a write answered with an error left nothing behind.

// maxGroup bounds the writes of one transaction: enough to take what 512
// runs in parallel queue meanwhile, few enough that the transaction, which
// holds SQLite's write lock, stays short for other processes.
const maxGroup = 128

// writeGroup is the queue of writes waiting for a transaction.
type writeGroup struct {
	mu      sync.Mutex
	queue   []*pendingWrite
	writing bool // the writer goroutine is at work
	// known are the connections whose row a committed write of this
	// handle made sure of; rows are never deleted, so a write to one of
	// them skips the INSERT. Only the writer touches it.
	known map[string]struct{}
	// commits counts the transactions committed, for tests.
	commits int64
}

// pendingWrite is one write waiting in the queue.
type pendingWrite struct {
	ctx  context.Context // the caller's: consulted only before the write runs
	name string
	fn   func(w *writeTx) error
	err  error         // the outcome, set before done is closed
	done chan struct{} // closed once the write is answered
}

// writeTx is one write's share of the group's transaction. Its statements
// run under the group's context, never the caller's: a statement whose
// context ends is interrupted, and SQLite rolls back the whole transaction
// on an interrupted write, every other write of the group with it.
type writeTx struct {
	ctx context.Context
	tx  *sql.Tx
	s   *Store
}

// submit queues w and returns its outcome. A write still in the queue when
// its ctx ends leaves it; once a transaction has taken it, the caller
// waits for the answer (a few statements and a COMMIT), since the write
// may already be committed.
func (s *Store) submit(w *pendingWrite) error {
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if !g.writing {
		g.writing = true
		go s.writeQueued()
	}
	g.mu.Unlock()
	select {
	case <-w.done:
		return w.err
	case <-w.ctx.Done():
		if s.withdraw(w) {
			return w.ctx.Err()
		}
		<-w.done
		return w.err
	}
}

// withdraw takes w out of the queue, unless a transaction has taken it.
func (s *Store) withdraw(w *pendingWrite) bool {
	g := &s.group
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, q := range g.queue {
		if q == w {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			return true
		}
	}
	return false
}

// writeQueued is the writer: it runs a transaction of the writes at the
// head of the queue at a time, until the queue is empty.
func (s *Store) writeQueued() {
	g := &s.group
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxGroup)
		if n == 0 {
			g.writing = false
			g.mu.Unlock()
			return
		}
		batch := make([]*pendingWrite, n)
		copy(batch, g.queue)
		g.queue = append(g.queue[:0], g.queue[n:]...)
		g.mu.Unlock()

		committed := s.runGroup(batch)
		g.mu.Lock()
		if committed {
			g.commits++
		}
		g.mu.Unlock()
		for _, w := range batch {
			close(w.done)
		}
	}
}

// runGroup runs batch in one transaction and sets every write's err; it
// reports whether it committed. A failure of the transaction itself
// (BEGIN, a savepoint that cannot be rolled back to, COMMIT) fails every
// write of it: none of them was committed.
func (s *Store) runGroup(batch []*pendingWrite) bool {
	ctx := context.Background() // no caller's: see writeTx
	fail := func(err error) bool {
		for _, w := range batch {
			if w.err == nil {
				w.err = err
			}
		}
		return false
	}
	tx, err := s.db.BeginTx(ctx, nil) // IMMEDIATE: see Open
	if err != nil {
		return fail(err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	wtx := &writeTx{ctx: ctx, tx: tx, s: s}
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			w.err = err // its caller gave up before its turn
			continue
		}
		if err := wtx.apply(w); err != nil {
			return fail(fmt.Errorf("the transaction it shared with %d other writes failed: %w", len(batch)-1, err))
		}
	}
	if s.beforeCommit != nil {
		if err := s.beforeCommit(); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	if s.group.known == nil {
		s.group.known = make(map[string]struct{})
	}
	for _, w := range batch {
		if w.err == nil {
			s.group.known[w.name] = struct{}{}
		}
	}
	return true
}

// apply runs one write inside its own savepoint, after making sure its
// connection's row exists (once per handle: see writeGroup.known). A write that fails is rolled back to the
// savepoint, and its error is w.err; apply returns an error only when the
// transaction can no longer go on.
func (wtx *writeTx) apply(w *pendingWrite) error {
	if _, err := wtx.exec(`SAVEPOINT write`); err != nil {
		return err
	}
	w.err = func() error {
		if _, ok := wtx.s.group.known[w.name]; !ok {
			if _, err := wtx.exec(`INSERT INTO connections (name) VALUES (?) ON CONFLICT (name) DO NOTHING`,
				w.name); err != nil {
				return err
			}
		}
		return w.fn(wtx)
	}()
	if w.err != nil {
		if _, err := wtx.exec(`ROLLBACK TO write`); err != nil {
			return err
		}
	}
	_, err := wtx.exec(`RELEASE write`)
	return err
}
