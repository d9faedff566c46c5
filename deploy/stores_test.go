package deploy

// The example configs are validated with the stores chimport links, as
// cmd/chimport does: their `state:` URLs must be ones the binary opens.
import (
	_ "github.com/chimport/chimport/internal/state/dynamodb"
	_ "github.com/chimport/chimport/internal/state/postgres"
	_ "github.com/chimport/chimport/internal/state/sqlite"
)
