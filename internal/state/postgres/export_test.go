package postgres

import "context"

// SetRetention changes how many runs and failures s keeps per connection.
func (s *Store) SetRetention(runs, failures int) { s.keepRuns, s.keepFailures = runs, failures }

// Show reads a server setting as one of s's pooled sessions sees it.
func (s *Store) Show(ctx context.Context, setting string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&v)
	return v, err
}

// Exec runs a statement on s's pool, for tests that reach past the store.
func (s *Store) Exec(ctx context.Context, sql string, args ...any) error {
	_, err := s.pool.Exec(ctx, sql, args...)
	return err
}

// Count runs a query returning one number.
func (s *Store) Count(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

// MaxConns is the size of s's pool.
func (s *Store) MaxConns() int32 { return s.pool.Config().MaxConns }
