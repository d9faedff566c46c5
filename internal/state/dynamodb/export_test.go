package dynamodb

import (
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// SetRetention shrinks how many runs and failures s keeps per
// connection and how often it trims, so tests can see trimming without
// writing a thousand items.
func SetRetention(s *Store, runs, failures, every int) {
	s.keepRuns, s.keepFailures, s.trimEvery = runs, failures, every
}

// SetClock replaces the clock of s's delta keys.
func SetClock(s *Store, now func() time.Time) { s.now = now }

// SetFoldAfter changes when UpdateRoster folds by itself.
func SetFoldAfter(s *Store, bytes int64, groups int) {
	s.foldAfterBytes, s.foldAfterGroups = bytes, groups
}

// SetTidy turns the deletes after a fold off (false) or on, to stand in
// for deletes that failed.
func SetTidy(s *Store, on bool) { s.noTidy = !on }

// Calls counts the HTTP requests a store sends to DynamoDB, by operation:
// every attempt, retries included, as DynamoDB would bill and throttle
// them.
type Calls struct {
	mu     sync.Mutex
	byName map[string]int
	bytes  int64 // request bodies
}

// CountCalls makes s count its requests from now on. Call it before s is
// in use.
func CountCalls(s *Store) *Calls {
	c := &Calls{byName: map[string]int{}}
	s.client = dynamodb.New(s.client.Options(), func(o *dynamodb.Options) {
		o.HTTPClient = countingClient{inner: o.HTTPClient, calls: c}
	})
	return c
}

// Take returns the counts since the last Take, their total, and the
// bytes of request bodies sent.
func (c *Calls) Take() (byName map[string]int, total int, sent int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byName, sent = maps.Clone(c.byName), c.bytes
	for _, n := range byName {
		total += n
	}
	clear(c.byName)
	c.bytes = 0
	return byName, total, sent
}

type countingClient struct {
	inner dynamodb.HTTPClient
	calls *Calls
}

func (c countingClient) Do(req *http.Request) (*http.Response, error) {
	_, op, _ := strings.Cut(req.Header.Get("X-Amz-Target"), ".") // "DynamoDB_20120810.PutItem"
	c.calls.mu.Lock()
	c.calls.byName[op]++
	c.calls.bytes += max(req.ContentLength, 0)
	c.calls.mu.Unlock()
	return c.inner.Do(req)
}
