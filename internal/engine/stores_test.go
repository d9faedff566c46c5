package engine

// The engine links no store; its tests open SQLite, DynamoDB and
// PostgreSQL stores by URL (state.Open), so they link the three drivers
// here.
import (
	_ "github.com/chimport/chimport/internal/state/dynamodb"
	_ "github.com/chimport/chimport/internal/state/postgres"
	_ "github.com/chimport/chimport/internal/state/sqlite"
)
