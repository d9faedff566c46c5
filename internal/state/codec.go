package state

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// The range of times unix nanoseconds in an int64 can hold: every store
// keeps times this way, so none accepts a time outside it.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Nanos encodes t as unix nanoseconds, nil for the zero time, the way every
// store keeps times. It refuses times an int64 cannot hold (before 1678 or
// after 2262) rather than store a wrapped-around value.
func Nanos(t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return nil, fmt.Errorf("time %s is outside the storable range %s to %s",
			t.UTC().Format(time.RFC3339Nano), minTime.UTC().Format(time.RFC3339), maxTime.UTC().Format(time.RFC3339))
	}
	n := t.UnixNano()
	return &n, nil
}

// FromNanos decodes what Nanos encoded, in UTC.
func FromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// checkpointRecord is a Checkpoint as the stores keep it (SQLite's
// connections.checkpoint column, DynamoDB's Checkpoint attribute), with
// times encoded by Nanos. Its JSON is part of files and tables in the
// field: change it only in ways old values still decode.
type checkpointRecord struct {
	WindowStart *int64            `json:"window_start,omitempty"`
	WindowEnd   *int64            `json:"window_end,omitempty"`
	Views       map[string]*int64 `json:"views,omitempty"`
	UpdatedAt   *int64            `json:"updated_at,omitempty"`
}

// EncodeCheckpoint is the JSON a store keeps for cp. cp.Token is a
// credential, not part of the checkpoint, and is left out.
func EncodeCheckpoint(cp Checkpoint) (string, error) {
	var r checkpointRecord
	var err error
	if r.WindowStart, err = Nanos(cp.WindowStart); err != nil {
		return "", fmt.Errorf("checkpoint window start: %w", err)
	}
	if r.WindowEnd, err = Nanos(cp.WindowEnd); err != nil {
		return "", fmt.Errorf("checkpoint window end: %w", err)
	}
	if r.UpdatedAt, err = Nanos(cp.UpdatedAt); err != nil {
		return "", fmt.Errorf("checkpoint updated at: %w", err)
	}
	if len(cp.Views) > 0 {
		r.Views = make(map[string]*int64, len(cp.Views))
		for view, t := range cp.Views {
			if r.Views[view], err = Nanos(t); err != nil {
				return "", fmt.Errorf("checkpoint view %q: %w", view, err)
			}
		}
	}
	b, err := json.Marshal(r)
	return string(b), err
}

// DecodeCheckpoint reads what EncodeCheckpoint wrote. The checkpoint it
// returns always has a non-nil Views, as Checkpoint promises.
func DecodeCheckpoint(s string) (*Checkpoint, error) {
	var r checkpointRecord
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w", err)
	}
	cp := &Checkpoint{
		WindowStart: FromNanos(r.WindowStart),
		WindowEnd:   FromNanos(r.WindowEnd),
		Views:       make(map[string]time.Time, len(r.Views)),
		UpdatedAt:   FromNanos(r.UpdatedAt),
	}
	for view, n := range r.Views {
		cp.Views[view] = FromNanos(n)
	}
	return cp, nil
}
