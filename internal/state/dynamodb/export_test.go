package dynamodb

// SetRetention shrinks how many runs and failures s keeps per
// connection and how often it trims, so tests can see trimming without
// writing a thousand items.
func SetRetention(s *Store, runs, failures, every int) {
	s.keepRuns, s.keepFailures, s.trimEvery = runs, failures, every
}
