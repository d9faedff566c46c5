package notify

import (
	"testing"

	"github.com/chimport/chimport/internal/awstest"
)

func TestMain(m *testing.M) { awstest.Main(m) }
