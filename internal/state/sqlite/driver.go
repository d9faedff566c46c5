package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/chimport/chimport/internal/state"
)

// forms describes this store's URLs in every bad-URL error.
const forms = "sqlite://FILE (relative to the current directory), sqlite:///ABSOLUTE/FILE"

func init() {
	state.Register(state.Driver{
		Schemes:  []string{"sqlite"},
		Forms:    forms,
		Default:  true,
		Validate: validate,
		Open: func(ctx context.Context, path string) (state.Store, error) {
			s, err := Open(ctx, path)
			if err != nil {
				return nil, err // not a nil *Store in a non-nil interface
			}
			return s, nil
		},
		Init:  initFile,
		Check: checkFile,
	})
}

// validate checks what follows "sqlite://": the file path, taken literally
// (no percent-decoding, no query parameters).
func validate(path string) error {
	switch {
	case path == "":
		return errors.New("no file path")
	case strings.ContainsRune(path, '?'):
		return errors.New("query parameters are not supported for sqlite")
	}
	return nil
}

// initFile opens (creating and migrating) the file, for `chimport init`.
// SQLite creates its file on Open anyway, so this only reports; the file
// counts as existing if it was there before, even if Init migrated it.
func initFile(ctx context.Context, path string) (state.InitReport, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return state.InitReport{}, fmt.Errorf("state: init sqlite %q: %w", path, err)
	}
	_, err = os.Stat(abs)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return state.InitReport{}, fmt.Errorf("state: init sqlite %q: %w", path, err)
	}
	s, err := Open(ctx, abs)
	if err != nil {
		return state.InitReport{}, err
	}
	if err := s.Close(); err != nil {
		return state.InitReport{}, err
	}
	label := fmt.Sprintf("sqlite file %s (schema version %d)", s.Path(), len(migrations))
	if existed {
		return state.InitReport{Existing: []string{label}}, nil
	}
	return state.InitReport{Created: []string{label}}, nil
}
