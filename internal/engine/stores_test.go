package engine

// The engine links no store; its tests open SQLite and DynamoDB stores by
// URL (state.Open), so they link the two drivers here.
import (
	_ "github.com/chimport/chimport/internal/state/dynamodb"
	_ "github.com/chimport/chimport/internal/state/sqlite"
)
