package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// TODO(issue 11): placeholders while the store's rejected log is written.

var errNotYet = errors.New("rejected log: not implemented yet")

func (s *Store) RecordRejections(ctx context.Context, name string, rs []state.Rejection) error {
	return errNotYet
}

func (s *Store) ClearRejections(ctx context.Context, name string, members []state.MemberID) error {
	return errNotYet
}

func (s *Store) RejectedLog(ctx context.Context, name string) ([]state.Rejection, error) {
	return nil, nil
}

func (s *Store) NoteError(ctx context.Context, name, msg string, at time.Time) error { return nil }
