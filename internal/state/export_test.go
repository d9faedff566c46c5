package state

// SchemaVersion is the schema version this build writes.
var SchemaVersion = len(migrations)

// SetRetention shrinks how many runs and failures s keeps per connection, so
// tests can see trimming without writing a thousand rows.
func SetRetention(s *SQLite, runs, failures int) {
	s.keepRuns, s.keepFailures = runs, failures
}
