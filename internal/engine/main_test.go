package engine

import (
	"os"
	"testing"

	"github.com/chimport/chimport/internal/awstest"
	"github.com/chimport/chimport/internal/pgtest"
)

// The end-to-end tests run once per state store; DynamoDB runs on
// dynalite and PostgreSQL on a throwaway cluster, both stopped here once
// every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	awstest.Stop()
	pgtest.Stop()
	os.Exit(code)
}
