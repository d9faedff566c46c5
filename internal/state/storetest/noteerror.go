package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// lastError is the part of ConnectionState that NoteError, FailRun and
// CompleteRun say about errors.
type lastError struct {
	Error string
	At    time.Time
}

func lastErrorOf(c state.ConnectionState) lastError { return lastError{c.LastError, c.LastErrorAt} }

// testNoteError: a note sets LastError and LastErrorAt and nothing else,
// an older one than the stored LastErrorAt changes nothing, FailRun
// dates its error at the run's end, and CompleteRun clears both.
func testNoteError(t *testing.T, s state.Store) {
	ctx := context.Background()
	ok(t, s.NoteError(ctx, "fresh", "mailchimp: 503", at(time.Minute)))
	diff(t, "a note makes the connection known",
		state.ConnectionState{Connection: "fresh", LastError: "mailchimp: 503", LastErrorAt: at(time.Minute)},
		connection(t, s, "fresh"))

	ok(t, s.StartRun(ctx, "news", at(0)))
	cp := state.Checkpoint{WindowEnd: at(time.Hour), Views: map[string]time.Time{"default": at(30 * time.Minute)}}
	ok(t, s.SaveCheckpoint(ctx, "news", cp))
	// The lease is no matter: a note is not fenced.
	_, err := s.ClaimLease(ctx, "news", "worker-1", at(0), time.Hour)
	ok(t, err)
	before := connection(t, s, "news")

	zone := time.FixedZone("UTC-3", -3*60*60)
	note := func(msg string, d time.Duration) { ok(t, s.NoteError(ctx, "news", msg, at(d).In(zone))) }
	steps := []struct {
		name string
		do   func()
		want lastError
	}{
		{"first note", func() { note("target: 503", 2*time.Minute) }, lastError{"target: 503", at(2 * time.Minute)}},
		{"a later note", func() { note("target: 502", 3*time.Minute) }, lastError{"target: 502", at(3 * time.Minute)}},
		{"an older note is ignored", func() { note("stale", 3*time.Minute-time.Nanosecond) },
			lastError{"target: 502", at(3 * time.Minute)}},
		{"a note at the same instant replaces", func() { note("target: 504", 3*time.Minute) },
			lastError{"target: 504", at(3 * time.Minute)}},
		{"FailRun dates its error at its end", func() {
			ok(t, s.FailRun(ctx, state.Run{Connection: "news", Result: state.ResultFailed,
				Finished: at(5 * time.Minute).In(zone), Error: "target: 504 after 5 tries"}))
		}, lastError{"target: 504 after 5 tries", at(5 * time.Minute)}},
		{"a note older than the failed run is ignored", func() { note("late", 4*time.Minute) },
			lastError{"target: 504 after 5 tries", at(5 * time.Minute)}},
		{"a note of the next run", func() { note("mailchimp: 429", 6*time.Minute) },
			lastError{"mailchimp: 429", at(6 * time.Minute)}},
	}
	for _, step := range steps {
		step.do()
		c := connection(t, s, "news")
		diff(t, step.name, step.want, lastErrorOf(c))
		if c.LastErrorAt.Location() != time.UTC {
			t.Errorf("%s: LastErrorAt is in %s, want UTC", step.name, c.LastErrorAt.Location())
		}
		// Nothing else moves: the checkpoint, the watermark, the attempts.
		c.LastError, c.LastErrorAt = before.LastError, before.LastErrorAt
		diff(t, step.name+": the rest of the state", before, c)
	}

	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(time.Hour), Finished: at(7 * time.Minute)}))
	diff(t, "after CompleteRun", lastError{}, lastErrorOf(connection(t, s, "news")))
	// With nothing stored, any note is the latest.
	note("mailchimp: 500", time.Minute)
	diff(t, "a note after CompleteRun", lastError{"mailchimp: 500", at(time.Minute)}, lastErrorOf(connection(t, s, "news")))
}

func testNoteErrorRejectsBadInput(t *testing.T, s state.Store) {
	ctx := context.Background()
	ok(t, s.NoteError(ctx, "news", "target: 503", at(0)))
	before := connection(t, s, "news")
	tests := []struct {
		name, conn, msg string
		at              time.Time
	}{
		{"no connection", "", "x", at(time.Hour)},
		{"no error", "news", "", at(time.Hour)},
		{"no time", "news", "x", time.Time{}},
		{"a time past 2262", "news", "x", time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"no error for a new connection", "fresh", "", at(time.Hour)},
	}
	for _, tt := range tests {
		if err := s.NoteError(ctx, tt.conn, tt.msg, tt.at); err == nil {
			t.Errorf("NoteError with %s: no error", tt.name)
		}
	}
	all, err := s.Connections(ctx)
	ok(t, err)
	diff(t, "Connections after refused notes", []state.ConnectionState{before}, all)
}
