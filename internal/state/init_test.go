package state_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chimport/chimport/internal/state"
	"github.com/google/go-cmp/cmp"
)

func TestInitSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	label := fmt.Sprintf("sqlite file %s (schema version %d)", path, state.SchemaVersion)

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

func TestInitDynamoDB(t *testing.T) {
	dynamoEnv(t)
	ctx := context.Background()
	url := dynamoURL(t)
	p := strings.TrimSuffix(strings.TrimPrefix(strings.Split(url, "&")[0], "dynamodb://?history_table="), "-history")
	all := []string{"DynamoDB table " + p + "-history", "DynamoDB table " + p + "-failures", "DynamoDB table " + p + "-runs"}

	report, err := state.Init(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(state.InitReport{Created: all}, report); d != "" {
		t.Errorf("first Init (-want +got):\n%s", d)
	}
	report, err = state.Init(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(state.InitReport{Existing: all}, report); d != "" {
		t.Errorf("second Init (-want +got):\n%s", d)
	}
	s := openDynamoDB(t, url)
	complete(t, s, "news", t0)
}

func TestInitBadURL(t *testing.T) {
	for _, url := range []string{"", "postgres://x", "dynamodb://?history_table=x", "sqlite://"} {
		if _, err := state.Init(context.Background(), url); !errors.Is(err, state.ErrBadURL) {
			t.Errorf("Init(%q) = %v, want ErrBadURL", url, err)
		}
	}
}
