package config

// Validation checks `state:` URLs with the stores a program links; the
// tests link the two that chimport ships, as cmd/chimport does.
import (
	_ "github.com/chimport/chimport/internal/state/dynamodb"
	_ "github.com/chimport/chimport/internal/state/sqlite"
)
