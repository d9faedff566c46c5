package main

// The state stores this binary can open, by the scheme of a config's
// `state:` URL. Each package registers its scheme when it is linked in;
// internal/state itself knows none of them, so that the engine, which
// imports it for its types, links no database driver or AWS SDK.
//
// This is where a store is added: write its package under internal/state
// (passing internal/state/storetest), then import it here.
import (
	_ "github.com/chimport/chimport/internal/state/dynamodb" // dynamodb://?...
	_ "github.com/chimport/chimport/internal/state/postgres" // postgres://USER:PASSWORD@HOST/DB
	_ "github.com/chimport/chimport/internal/state/sqlite"   // sqlite://FILE
)
