package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// timedStore adds up the time the sync spends waiting on the state store,
// which `run` reports: with thousands of connections it is the cost that
// grows with their number.
type timedStore struct {
	state.Store
	// now reads the time a call starts and ends: the wall clock, since
	// what is measured is real latency.
	now   func() time.Time
	total atomic.Int64 // nanoseconds, summed over concurrent calls
	calls atomic.Int64
}

func (s *timedStore) time(start time.Time) {
	s.total.Add(int64(s.now().Sub(start)))
	s.calls.Add(1)
}

// Spent is the time spent in store calls so far, summed over concurrent
// calls, and how many calls there were.
func (s *timedStore) Spent() (time.Duration, int64) {
	return time.Duration(s.total.Load()), s.calls.Load()
}

func (s *timedStore) Connection(ctx context.Context, name string) (state.ConnectionState, error) {
	defer s.time(s.now())
	return s.Store.Connection(ctx, name)
}

func (s *timedStore) StartRun(ctx context.Context, name string, at time.Time) error {
	defer s.time(s.now())
	return s.Store.StartRun(ctx, name, at)
}

func (s *timedStore) SaveCheckpoint(ctx context.Context, name string, cp state.Checkpoint) error {
	defer s.time(s.now())
	return s.Store.SaveCheckpoint(ctx, name, cp)
}

func (s *timedStore) CompleteRun(ctx context.Context, run state.Run) error {
	defer s.time(s.now())
	return s.Store.CompleteRun(ctx, run)
}

func (s *timedStore) FailRun(ctx context.Context, run state.Run) error {
	defer s.time(s.now())
	return s.Store.FailRun(ctx, run)
}

func (s *timedStore) AddFailure(ctx context.Context, f state.Failure) error {
	defer s.time(s.now())
	return s.Store.AddFailure(ctx, f)
}

func (s *timedStore) UpdateRoster(ctx context.Context, name string, c state.RosterChange) error {
	defer s.time(s.now())
	return s.Store.UpdateRoster(ctx, name, c)
}

func (s *timedStore) Roster(ctx context.Context, name string) ([]state.MemberID, error) {
	defer s.time(s.now())
	return s.Store.Roster(ctx, name)
}

func (s *timedStore) RosterSize(ctx context.Context, name string) (int64, error) {
	defer s.time(s.now())
	return s.Store.RosterSize(ctx, name)
}

func (s *timedStore) RecordRejections(ctx context.Context, name string, rs []state.Rejection) error {
	defer s.time(s.now())
	return s.Store.RecordRejections(ctx, name, rs)
}

func (s *timedStore) ClearRejections(ctx context.Context, name string, members []state.MemberID) error {
	defer s.time(s.now())
	return s.Store.ClearRejections(ctx, name, members)
}

func (s *timedStore) RejectedLog(ctx context.Context, name string) ([]state.Rejection, error) {
	defer s.time(s.now())
	return s.Store.RejectedLog(ctx, name)
}

func (s *timedStore) NoteError(ctx context.Context, name, msg string, at time.Time) error {
	defer s.time(s.now())
	return s.Store.NoteError(ctx, name, msg, at)
}
