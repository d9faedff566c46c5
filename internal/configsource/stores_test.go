package configsource

// Loading a config validates its `state:` URL with the stores a program
// links; the tests link the two that chimport ships, as cmd/chimport does.
import (
	_ "github.com/chimport/chimport/internal/state/dynamodb"
	_ "github.com/chimport/chimport/internal/state/sqlite"
)
