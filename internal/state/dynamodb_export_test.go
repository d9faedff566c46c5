package state

// SetDynamoDBRetention shrinks how many runs and failures s keeps per
// connection and how often it trims, so tests can see trimming without
// writing a thousand items.
func SetDynamoDBRetention(s *DynamoDB, runs, failures, every int) {
	s.keepRuns, s.keepFailures, s.trimEvery = runs, failures, every
}
