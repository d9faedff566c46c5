package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// retryRejected delivers every member of the rejected log again, before
// the run's window: its current values, fetched now by its hash, or its
// delete when it is gone (a 404, or a status outside the connection's
// filter). An accepted record leaves the log; one refused again stays,
// with one more attempt. A member the window also holds comes again with
// it, later, so the target ends with its newest values either way.
func (e *Engine) retryRejected(ctx context.Context, job Job, st state.ConnectionState, entries []state.Rejection, run runWrites, sum *Summary) error {
	if len(entries) == 0 {
		return nil
	}
	ids := make([]state.MemberID, len(entries))
	for i, r := range entries {
		ids[i] = r.Member
	}
	changes, err := e.fetchCurrent(ctx, job, ids, nil)
	if err != nil {
		return fmt.Errorf("retrying the %d records of the rejected log: %w", len(entries), err)
	}
	var mu sync.Mutex
	d := newDelivery(deliveryOf{
		// The deletes of members gone are fenced like a reconcile's, on
		// the checkpoint the run starts from.
		sink: e.fenced(job, sum, st.Checkpoint), batchSize: run.batchSize, workers: e.DeliveryConcurrency,
		roster: run.roster.write, rejected: run.rejected, retrying: true, logger: e.Logger,
		onSent: func(b batch) {
			mu.Lock()
			defer mu.Unlock()
			sum.Delivered += int64(len(b))
			sum.Tombstoned += int64(len(members(b, target.OpDelete)))
		},
	})
	err = d.feed(ctx, func(ctx context.Context) error {
		for _, c := range changes {
			if err := d.send(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retrying the %d records of the rejected log: %w", len(entries), err)
	}
	e.Logger.Info("retried the rejected log", "connection", job.Connection,
		"retried", len(entries), "still_rejected", run.rejected.size())
	return nil
}

// fetchCurrent reads the current state of each member, at most
// PageConcurrency requests at a time, and returns the change that brings
// the target in line with it: its record, or its delete when it is gone
// (404, the audience still answering) or outside the status filter.
// keep, when set, drops changes before the audience is checked, so a 404
// whose delete it drops costs no check.
func (e *Engine) fetchCurrent(ctx context.Context, job Job, ids []state.MemberID, keep func([]change) ([]change, error)) ([]change, error) {
	fields := job.Mapping.Fields()
	if len(job.Statuses) > 0 {
		fields = append(fields, "status")
	}
	changes := make([]change, len(ids))
	notFound := make([]bool, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.PageConcurrency)
	for i, id := range ids {
		g.Go(func() error {
			m, err := job.Mailchimp.Member(gctx, job.ListID, id.String(), fields)
			switch {
			case errors.Is(err, mailchimp.ErrMemberNotFound):
				notFound[i] = true
				changes[i] = change{op: target.Delete(id.String()), member: id}
				return nil
			case err != nil:
				return err
			}
			if status, _ := m["status"].(string); len(job.Statuses) > 0 && !slices.Contains(job.Statuses, status) {
				changes[i] = change{op: target.Delete(id.String()), member: id}
				return nil
			}
			body, err := job.Mapping.Append(nil, m)
			if err != nil {
				return fmt.Errorf("member %s: %w", id, err)
			}
			changes[i] = change{op: target.Upsert(body), member: id}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	gone := make(map[state.MemberID]bool)
	for i, nf := range notFound {
		if nf {
			gone[ids[i]] = true
		}
	}
	if keep != nil {
		var err error
		if changes, err = keep(changes); err != nil {
			return nil, err
		}
	}
	n := 0
	for _, c := range changes {
		if c.op.Kind == target.OpDelete && gone[c.member] {
			n++
		}
	}
	if n > 0 {
		if err := e.checkListAnswers(ctx, job, n); err != nil {
			return nil, err
		}
	}
	return changes, nil
}

// checkListAnswers makes sure, before n members that answered 404 are
// deleted from the target, that the audience itself still answers: a
// list deleted meanwhile answers 404 for every member too.
func (e *Engine) checkListAnswers(ctx context.Context, job Job, n int) error {
	status := ""
	if len(job.Statuses) > 0 {
		status = job.Statuses[0]
	}
	_, err := job.Mailchimp.Members(ctx, job.ListID, mailchimp.MembersQuery{Count: 1, Fields: []string{"total_items"}, Status: status})
	switch {
	case mailchimp.IsKind(err, mailchimp.KindNotFound):
		return fmt.Errorf("%d members answered 404, and so does the audience itself: nothing was deleted: %w", n, err)
	case err != nil:
		return fmt.Errorf("%d members answered 404; checking that the audience still exists before deleting them failed: %w", n, err)
	}
	return nil
}
