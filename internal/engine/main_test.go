package engine

import (
	"testing"

	"github.com/chimport/chimport/internal/awstest"
)

// The end-to-end tests run once per state store; DynamoDB runs on dynalite.
func TestMain(m *testing.M) { awstest.Main(m) }
