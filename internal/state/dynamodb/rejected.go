package dynamodb

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/chimport/chimport/internal/state"
)

// The rejected log: an item per entry in the runs table (rejecteditems.go),
// and its summary on the history item. The package doc says why the
// entries are the truth and the summary is refreshed after each change.

// entryWriters bounds the UpdateItems one RecordRejections has in flight.
const entryWriters = 8

// RecordRejections implements state.Store: every entry is checked first,
// so a bad one writes nothing; then one UpdateItem per member, which
// DynamoDB applies atomically (FirstSeen only if the item has none,
// Attempts added to), so the entry is right whoever else writes it; then
// the summary is refreshed. A failure part-way leaves some entries
// written and the summary as it was; the next change refreshes it.
func (s *Store) RecordRejections(ctx context.Context, name string, rs []state.Rejection) error {
	return s.write("record rejections", name, func() (string, error) {
		for _, r := range rs {
			if err := state.CheckRejection(r); err != nil {
				return "", err
			}
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(entryWriters)
		for _, r := range state.LastPerMember(rs) {
			g.Go(func() error { return s.recordRejection(gctx, name, r) })
		}
		if err := g.Wait(); err != nil {
			return s.cfg.RunsTable, err
		}
		return s.refreshRejected(ctx, name)
	})
}

// recordRejection upserts one entry.
func (s *Store) recordRejection(ctx context.Context, name string, r state.Rejection) error {
	u := newHistoryUpdate() // the builder of any UpdateItem, here on the runs table
	u.setString(attrRecordKey, r.Key)
	u.setValue(attrStatus, num(int64(r.Status)))
	u.setString(attrReason, r.Reason)
	at := u.setValue(attrLastAttempt, num(r.LastAttempt.UnixNano())) // CheckRejection: in range
	first := u.name(attrFirstSeen)
	u.set = append(u.set, first+" = if_not_exists("+first+", "+at+")")
	u.addNumber(attrAttempts, 1)
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.cfg.RunsTable,
		Key:                       rejectedKey(name, r.Member),
		UpdateExpression:          aws.String(u.expression()),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.values,
	})
	return err
}

// ClearRejections implements state.Store: the members' items are deleted
// (BatchWriteItem, 25 a call; deleting an item that is not there is no
// error), then the summary is refreshed.
func (s *Store) ClearRejections(ctx context.Context, name string, members []state.MemberID) error {
	return s.write("clear rejections", name, func() (string, error) {
		keys := make([]map[string]types.AttributeValue, 0, len(members))
		seen := make(map[state.MemberID]bool, len(members))
		for _, id := range members {
			if !seen[id] { // BatchWriteItem refuses a key twice in one call
				seen[id] = true
				keys = append(keys, rejectedKey(name, id))
			}
		}
		if err := deleteKeys(ctx, s.client, s.cfg.RunsTable, keys); err != nil {
			return s.cfg.RunsTable, err
		}
		return s.refreshRejected(ctx, name)
	})
}

// refreshRejected sums up the log, as a query reads it now, on the
// history item: its size and its latest refusal. The update also makes
// the connection known, as every write does.
func (s *Store) refreshRejected(ctx context.Context, name string) (table string, err error) {
	log, err := s.readRejected(ctx, name)
	if err != nil {
		return s.cfg.RunsTable, err
	}
	u := newHistoryUpdate()
	u.setValue(attrRejectedCount, num(int64(len(log))))
	if sample := latestRefusal(log); sample != nil {
		u.setValue(attrRejectedSample, encodeSample(*sample))
	} else {
		u.removeAttr(attrRejectedSample)
	}
	_, err = s.updateHistory(ctx, name, u)
	return s.cfg.HistoryTable, err
}

// RejectedLog implements state.Store: one query of the entries' prefix,
// which lists them in member order.
func (s *Store) RejectedLog(ctx context.Context, name string) ([]state.Rejection, error) {
	if name == "" {
		return nil, ctx.Err()
	}
	log, err := s.readRejected(ctx, name)
	if err != nil {
		return nil, s.opError("read rejected log", name, s.cfg.RunsTable, err)
	}
	return log, nil
}

func (s *Store) readRejected(ctx context.Context, name string) ([]state.Rejection, error) {
	items, err := queryKeys(ctx, s.client, &dynamodb.QueryInput{
		TableName:                 &s.cfg.RunsTable,
		KeyConditionExpression:    aws.String("#id = :id AND begins_with(#key, :prefix)"),
		ExpressionAttributeNames:  map[string]string{"#id": attrListID, "#key": attrRunID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(name), ":prefix": str(rejectedPrefix)},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	log := make([]state.Rejection, 0, len(items))
	for _, it := range items {
		r, err := decodeEntry(it)
		if err != nil {
			return nil, err
		}
		log = append(log, r)
	}
	return log, nil
}

// NoteError implements state.Store: one UpdateItem, on condition that the
// item holds no later error; when it does, the note changes nothing.
func (s *Store) NoteError(ctx context.Context, name, msg string, at time.Time) error {
	return s.write("note error", name, func() (string, error) {
		if err := state.CheckNoteError(msg, at); err != nil {
			return "", err
		}
		u := newHistoryUpdate()
		u.setString(attrLastError, msg)
		ph := u.setValue(attrLastErrorAt, num(at.UnixNano()))
		e := u.name(attrLastErrorAt)
		u.cond = "attribute_not_exists(" + e + ") OR " + e + " <= " + ph
		_, err := s.updateHistory(ctx, name, u)
		var newer *types.ConditionalCheckFailedException
		if errors.As(err, &newer) {
			return "", nil
		}
		return s.cfg.HistoryTable, err
	})
}
