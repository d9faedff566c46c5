package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// timedStore adds up the time the sync spends waiting on the state store,
// which `run` reports: with thousands of connections it is the cost that
// grows with their number. It keeps the same figures per method, so a
// benchmark can tell which calls the time goes to.
type timedStore struct {
	state.Store
	// now reads the time a call starts and ends: the wall clock, since
	// what is measured is real latency.
	now   func() time.Time
	total atomic.Int64 // nanoseconds, summed over concurrent calls
	calls atomic.Int64

	methods sync.Map // method name -> *methodTimes
}

// methodTimes are one method's figures.
type methodTimes struct {
	total, calls atomic.Int64
}

// MethodTimes is what ByMethod reports for one method.
type MethodTimes struct {
	Method string
	Calls  int64
	Spent  time.Duration // summed over concurrent calls
}

func (s *timedStore) time(method string, start time.Time) {
	d := int64(s.now().Sub(start))
	s.total.Add(d)
	s.calls.Add(1)
	m, ok := s.methods.Load(method)
	if !ok {
		m, _ = s.methods.LoadOrStore(method, new(methodTimes))
	}
	m.(*methodTimes).total.Add(d)
	m.(*methodTimes).calls.Add(1)
}

// Spent is the time spent in store calls so far, summed over concurrent
// calls, and how many calls there were.
func (s *timedStore) Spent() (time.Duration, int64) {
	return time.Duration(s.total.Load()), s.calls.Load()
}

// ByMethod is Spent for each method that was called, in no set order.
func (s *timedStore) ByMethod() []MethodTimes {
	var out []MethodTimes
	s.methods.Range(func(k, v any) bool {
		m := v.(*methodTimes)
		out = append(out, MethodTimes{Method: k.(string), Calls: m.calls.Load(), Spent: time.Duration(m.total.Load())})
		return true
	})
	return out
}

func (s *timedStore) Connection(ctx context.Context, name string) (state.ConnectionState, error) {
	defer s.time("Connection", s.now())
	return s.Store.Connection(ctx, name)
}

func (s *timedStore) StartRun(ctx context.Context, name string, at time.Time) error {
	defer s.time("StartRun", s.now())
	return s.Store.StartRun(ctx, name, at)
}

func (s *timedStore) SaveCheckpoint(ctx context.Context, name string, cp state.Checkpoint) error {
	defer s.time("SaveCheckpoint", s.now())
	return s.Store.SaveCheckpoint(ctx, name, cp)
}

func (s *timedStore) CompleteRun(ctx context.Context, run state.Run) error {
	defer s.time("CompleteRun", s.now())
	return s.Store.CompleteRun(ctx, run)
}

func (s *timedStore) FailRun(ctx context.Context, run state.Run) error {
	defer s.time("FailRun", s.now())
	return s.Store.FailRun(ctx, run)
}

func (s *timedStore) AddFailure(ctx context.Context, f state.Failure) error {
	defer s.time("AddFailure", s.now())
	return s.Store.AddFailure(ctx, f)
}

func (s *timedStore) UpdateRoster(ctx context.Context, name string, c state.RosterChange) error {
	defer s.time("UpdateRoster", s.now())
	return s.Store.UpdateRoster(ctx, name, c)
}

func (s *timedStore) Roster(ctx context.Context, name string) ([]state.MemberID, error) {
	defer s.time("Roster", s.now())
	return s.Store.Roster(ctx, name)
}

func (s *timedStore) RosterSize(ctx context.Context, name string) (int64, error) {
	defer s.time("RosterSize", s.now())
	return s.Store.RosterSize(ctx, name)
}

func (s *timedStore) RecordRejections(ctx context.Context, name string, rs []state.Rejection) error {
	defer s.time("RecordRejections", s.now())
	return s.Store.RecordRejections(ctx, name, rs)
}

func (s *timedStore) ClearRejections(ctx context.Context, name string, members []state.MemberID) error {
	defer s.time("ClearRejections", s.now())
	return s.Store.ClearRejections(ctx, name, members)
}

func (s *timedStore) RejectedLog(ctx context.Context, name string) ([]state.Rejection, error) {
	defer s.time("RejectedLog", s.now())
	return s.Store.RejectedLog(ctx, name)
}

func (s *timedStore) NoteError(ctx context.Context, name, msg string, at time.Time) error {
	defer s.time("NoteError", s.now())
	return s.Store.NoteError(ctx, name, msg, at)
}
