package dynamodb_test

import (
	"testing"

	"github.com/chimport/chimport/internal/awstest"
)

// TestMain stops the AWS emulators the DynamoDB tests start.
func TestMain(m *testing.M) { awstest.Main(m) }
