package postgres_test

import (
	"context"
	"testing"

	"github.com/chimport/chimport/internal/pgtest"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/postgres"
	"github.com/chimport/chimport/internal/state/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestPostgresStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (state.Store, func() state.Store) {
		url := pgtest.URL(t)
		initStore(t, url)
		return openStore(t, url), func() state.Store { return openStore(t, url) }
	})
}

func initStore(t testing.TB, url string) state.InitReport {
	t.Helper()
	report, err := state.Init(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return report
}

func openStore(t testing.TB, url string) state.Store {
	t.Helper()
	s, err := state.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*postgres.Store); !ok {
		t.Fatalf("state.Open(%s) is a %T", url, s)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}
