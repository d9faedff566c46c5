package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/sqlite"
	"github.com/google/go-cmp/cmp"
)

func TestInitSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	label := fmt.Sprintf("sqlite file %s (schema version %d)", path, sqlite.SchemaVersion)

	report, err := state.Init(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(state.InitReport{Created: []string{label}}, report); d != "" {
		t.Errorf("first Init (-want +got):\n%s", d)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	report, err = state.Init(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(state.InitReport{Existing: []string{label}}, report); d != "" {
		t.Errorf("second Init (-want +got):\n%s", d)
	}
	s, err := state.Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	complete(t, s, "news", t0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
