package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// What a refresh did for one member.
const (
	RefreshDelivered = "delivered" // its record reached the target
	RefreshGone      = "gone"      // it is gone from Mailchimp (or the filter), and from the target
	RefreshRejected  = "rejected"  // the target refused it: it waits in the rejected log
	RefreshAbsent    = "absent"    // neither in Mailchimp nor in the target: nothing was sent
)

// RefreshSummary is the outcome of one Refresh.
type RefreshSummary struct {
	// Outcome says, for each member id asked about, what happened.
	Outcome map[string]string
	// MailchimpRequests is how many requests the fetches made.
	MailchimpRequests int64
}

// Refresh delivers the current state of some members of a connection,
// outside any run: what a webhook's hint asks for. Each member is fetched
// by its id (the subscriber hash) and delivered: its record, or its delete
// when Mailchimp answers 404 (the audience still answering) or its status
// is outside the connection's filter. It goes through the same batches as
// a run (the roster, refused records and the rejected log alike), and it
// moves no watermark and records no run.
//
// A refresh must never overwrite a newer value delivered by a run: the
// caller serializes it with the connection's runs under the connection's
// lease (job.LeaseToken), and then every batch is fenced: a refresh whose
// lease was taken over meanwhile fails with state.ErrFenced before it
// sends anything.
func (e *Engine) Refresh(ctx context.Context, job Job, ids []string) (RefreshSummary, error) {
	e = e.withDefaults()
	sum := RefreshSummary{Outcome: make(map[string]string, len(ids))}
	before := job.Mailchimp.Stats()
	members := make([]state.MemberID, 0, len(ids))
	for _, s := range ids {
		id, err := state.ParseMemberID(s)
		if err != nil {
			return sum, fmt.Errorf("connection %q: refresh: %w", job.Connection, err)
		}
		members = append(members, id)
	}
	st, err := e.Store.Connection(ctx, job.Connection)
	if err != nil {
		return sum, err
	}
	run := runWrites{
		roster:    &runRoster{store: e.Store, name: job.Connection},
		rejected:  newRejectedLog(e.Store, job, e.Clock),
		batchSize: newBatchLimit(job.BatchSize, job.Connection, e.Logger),
	}
	if _, err := run.rejected.load(ctx, st); err != nil {
		return sum, err
	}
	var keep func([]change) ([]change, error)
	if st.Roster.Complete() {
		// Only a complete roster holds every member the target may hold;
		// until a run has built it, a delete goes out on Mailchimp's word.
		keep = func(cs []change) ([]change, error) { return e.onlyHeld(ctx, job, cs, sum.Outcome) }
	}
	changes, err := e.fetchCurrent(ctx, job, members, keep)
	sum.MailchimpRequests = job.Mailchimp.Stats().Requests - before.Requests
	if err != nil {
		return sum, fmt.Errorf("connection %q: refresh: %w", job.Connection, err)
	}
	var mu sync.Mutex
	d := newDelivery(deliveryOf{
		sink:      e.fencedIf(job, &Summary{WindowStart: st.Watermark}, st.Checkpoint, func(target.Op) bool { return true }),
		batchSize: run.batchSize, workers: e.DeliveryConcurrency,
		roster: run.roster.write, rejected: run.rejected, logger: e.Logger,
		onSent: func(b batch) {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range b {
				outcome := RefreshDelivered
				if c.op.Kind == target.OpDelete {
					outcome = RefreshGone
				}
				sum.Outcome[c.member.String()] = outcome
			}
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
		return sum, fmt.Errorf("connection %q: refresh: %w", job.Connection, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range members {
		if _, ok := sum.Outcome[id.String()]; !ok {
			sum.Outcome[id.String()] = RefreshRejected
		}
	}
	return sum, nil
}

// onlyHeld drops the deletes of members the roster does not hold: an
// event may name a member that never was in the target (a forgery, or
// one outside the filter all along), and deleting it would send a
// tombstone for nothing. The roster is read only when there is a delete,
// which for a webhook is rare (deleted members, changed addresses).
func (e *Engine) onlyHeld(ctx context.Context, job Job, changes []change, outcome map[string]string) ([]change, error) {
	if !slices.ContainsFunc(changes, func(c change) bool { return c.op.Kind == target.OpDelete }) {
		return changes, nil
	}
	roster, err := e.Store.Roster(ctx, job.Connection)
	if err != nil {
		return nil, fmt.Errorf("reading the roster: %w", err)
	}
	kept := changes[:0]
	for _, c := range changes {
		if _, held := slices.BinarySearchFunc(roster, c.member, compareIDs); c.op.Kind == target.OpDelete && !held {
			outcome[c.member.String()] = RefreshAbsent
			continue
		}
		kept = append(kept, c)
	}
	return kept, nil
}
