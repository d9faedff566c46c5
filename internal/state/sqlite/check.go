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
	if err := checkDir(dir); err != nil {
		return fail(err)
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

// checkDir says what is wrong with the directory a database file would go
// in, or nil: Open and checkFile share it, so both say the same thing. It
// never creates the directory: a typo in the path should fail loudly, not
// scatter state somewhere new.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %q does not exist", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%q is not a directory", dir)
	}
	return nil
}
