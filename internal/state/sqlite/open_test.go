package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/sqlite"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir) // relative paths resolve against the current directory
	abs := filepath.Join(t.TempDir(), "abs.db")

	tests := []struct {
		url      string
		wantFile string // created by a successful open
		wantErr  string // substring of the error, which must wrap ErrBadURL unless other
		other    bool   // the error comes from opening the file, not the URL
	}{
		{url: "sqlite://chimport.db", wantFile: filepath.Join(dir, "chimport.db")},
		{url: "sqlite://data/sub.db", wantFile: filepath.Join(dir, "data", "sub.db")},
		{url: "sqlite://./dot.db", wantFile: filepath.Join(dir, "dot.db")},
		{url: "sqlite://" + abs, wantFile: abs},
		{url: "SQLite://upper.db", wantFile: filepath.Join(dir, "upper.db")},
		{url: "sqlite://", wantErr: "no file path"},
		{url: "sqlite://x.db?mode=ro", wantErr: "query parameters"},
		{url: "chimport.db", wantErr: "want sqlite://"},
		{url: "sqlite:chimport.db", wantErr: "want sqlite://"},
		{url: "postgres://db/chimport", wantErr: `unsupported scheme "postgres"`},
		{url: "sqlite://missing/dir/x.db", wantErr: "missing", other: true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			s, err := state.Open(context.Background(), tt.url)
			if tt.wantErr != "" {
				if err == nil {
					s.Close()
					t.Fatal("no error")
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not mention %q", err, tt.wantErr)
				}
				if !tt.other && !errors.Is(err, state.ErrBadURL) {
					t.Errorf("error %q does not wrap ErrBadURL", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.(*sqlite.Store).Path(); got != tt.wantFile {
				t.Errorf("Path() = %q, want %q", got, tt.wantFile)
			}
			if _, err := os.Stat(tt.wantFile); err != nil {
				t.Errorf("file not created: %v", err)
			}
		})
	}
}
