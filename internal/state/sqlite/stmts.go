package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// Prepared statements. SQLite compiles every statement it is given, and
// with a few statements per write and thousands of small writes, parsing
// them again each time was a fifth of chimport's CPU: so each statement's
// text is prepared once per store and kept. database/sql prepares it
// again on each pooled connection the first time it runs there, and a
// transaction's statement reuses the one of its connection.

// maxStatements bounds the cache: the statements with a number of
// placeholders that varies (a chunk of ids) take one entry per number,
// and past the bound a text runs unprepared, as before.
const maxStatements = 256

// statements is a store's cache of prepared statements by their text.
type statements struct {
	mu     sync.Mutex
	byText map[string]*sql.Stmt
}

// prepared returns query prepared on db, preparing it on first use; nil
// once the cache is full. Preparing takes a pooled connection, so it
// happens outside the lock; of two callers preparing the same text at
// once, one's statement is kept.
func (c *statements) prepared(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.byText[query]
	full := len(c.byText) >= maxStatements
	c.mu.Unlock()
	if ok || full {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if kept, ok := c.byText[query]; ok {
		_ = st.Close()
		return kept, nil
	}
	if c.byText == nil {
		c.byText = make(map[string]*sql.Stmt)
	}
	c.byText[query] = st
	return st, nil
}

// close closes every statement, before the database is closed.
func (c *statements) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.byText {
		_ = st.Close()
	}
	c.byText = nil
}

// exec runs a statement of the write's transaction.
func (w *writeTx) exec(query string, args ...any) (sql.Result, error) {
	st, err := w.s.stmts.prepared(w.ctx, w.s.db, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return w.tx.ExecContext(w.ctx, query, args...)
	}
	return w.tx.StmtContext(w.ctx, st).ExecContext(w.ctx, args...)
}

// query runs a query of the write's transaction.
func (w *writeTx) query(query string, args ...any) (*sql.Rows, error) {
	st, err := w.s.stmts.prepared(w.ctx, w.s.db, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return w.tx.QueryContext(w.ctx, query, args...)
	}
	return w.tx.StmtContext(w.ctx, st).QueryContext(w.ctx, args...)
}

// queryRow runs a query of one row in the write's transaction; an error
// preparing it comes back from Scan, as QueryRow's do.
func (w *writeTx) queryRow(query string, args ...any) *sql.Row {
	st, err := w.s.stmts.prepared(w.ctx, w.s.db, query)
	if err != nil || st == nil {
		return w.tx.QueryRowContext(w.ctx, query, args...) // an error preparing it again comes back from Scan
	}
	return w.tx.StmtContext(w.ctx, st).QueryRowContext(w.ctx, args...)
}

// queryRow runs a read of one row on the pool, with the caller's ctx.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.stmts.prepared(ctx, s.db, query)
	if err != nil || st == nil {
		return s.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a read on the pool, with the caller's ctx.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.stmts.prepared(ctx, s.db, query)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return s.db.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}
