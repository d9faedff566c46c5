package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkFile reports whether Open would succeed on path, for `chimport
// check`, without creating the file: its directory exists and is writable
// (SQLite writes its -wal and -shm files beside the database), and the file,
// if it is there already, is a writable regular file. Its errors read as
// Open's for the same problem.
func checkFile(_ context.Context, path string) error {
	fail := func(err error) error {
		return fmt.Errorf("state: open sqlite %q: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail(err)
	}
	dir := filepath.Dir(abs)
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("directory %q does not exist", dir))
	} else if err != nil {
		return fail(err)
	} else if !fi.IsDir() {
		return fail(fmt.Errorf("%q is not a directory", dir))
	}
	if err := writable(dir); err != nil {
		return fail(fmt.Errorf("directory %q is not writable: %w", dir, err))
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // Open creates it
	case err != nil:
		return fail(err)
	case !fi.Mode().IsRegular():
		return fail(fmt.Errorf("%q is not a regular file", abs))
	}
	if err := writable(abs); err != nil {
		return fail(fmt.Errorf("%q is not writable: %w", abs, err))
	}
	return nil
}
