package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// InitReport says what Init found and what it made, in words for people:
// "sqlite file /abs/path.db (schema version 1)", "DynamoDB table
// mailchimp-failed-imports".
type InitReport struct {
	Created, Existing []string
}

// Init creates the store named by a `state:` URL, if it does not exist yet,
// and reports what it created and what was already there. It is idempotent,
// so deploy scripts can run it every time.
//
// SQLite creates its file on Open anyway; Init exists for DynamoDB, whose
// tables Open never creates: a worker that makes tables on the fly needs
// rights it should not have, and a typo in a table name would silently
// start a new, empty state.
func Init(ctx context.Context, rawURL string) (InitReport, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return InitReport{}, err
	}
	if loc.dynamo != nil {
		return initDynamoDB(ctx, *loc.dynamo)
	}
	return initSQLite(ctx, loc.sqlitePath)
}

// initSQLite opens (creating and migrating) the file. It counts as existing
// if the file was there before, even if Init migrated it.
func initSQLite(ctx context.Context, path string) (InitReport, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return InitReport{}, fmt.Errorf("state: init sqlite %q: %w", path, err)
	}
	_, err = os.Stat(abs)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return InitReport{}, fmt.Errorf("state: init sqlite %q: %w", path, err)
	}
	s, err := OpenSQLite(ctx, abs)
	if err != nil {
		return InitReport{}, err
	}
	if err := s.Close(); err != nil {
		return InitReport{}, err
	}
	label := fmt.Sprintf("sqlite file %s (schema version %d)", s.Path(), len(migrations))
	if existed {
		return InitReport{Existing: []string{label}}, nil
	}
	return InitReport{Created: []string{label}}, nil
}
