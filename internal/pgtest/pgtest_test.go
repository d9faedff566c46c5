package pgtest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// The cluster takes the password it was made with, refuses another, and
// gives each URL a schema of its own.
func TestCluster(t *testing.T) {
	ctx := context.Background()
	a, b := URL(t), URL(t)
	if a == b {
		t.Fatalf("two URLs are the same: %s", a)
	}
	conn, err := pgx.Connect(ctx, strings.Replace(a, "schema=", "application_name=", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != Database {
		t.Fatalf("current_database() = %q, %v; want %q", db, err, Database)
	}
	s := Start(t)
	wrong := strings.Replace(a, s.Password, "not-"+s.Password, 1)
	if c, err := pgx.Connect(ctx, strings.Replace(wrong, "schema=", "application_name=", 1)); err == nil {
		c.Close(ctx)
		t.Fatal("a wrong password was accepted")
	} else if !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("wrong password: %v, want password authentication failed", err)
	}
}
