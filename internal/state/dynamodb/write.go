package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/chimport/chimport/internal/state"
)

// historyUpdate is one UpdateItem on a connection's history item. Every
// attribute goes through a #name placeholder, so no attribute can collide
// with a DynamoDB reserved word.
type historyUpdate struct {
	set, add, remove []string
	cond             string // "" for none
	names            map[string]string
	values           map[string]types.AttributeValue
	err              error // the first encoding error
}

func newHistoryUpdate() *historyUpdate {
	return &historyUpdate{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

func (u *historyUpdate) name(attr string) string {
	u.names["#"+attr] = attr
	return "#" + attr
}

func (u *historyUpdate) value(v types.AttributeValue) string {
	ph := ":v" + strconv.Itoa(len(u.values))
	u.values[ph] = v
	return ph
}

func (u *historyUpdate) setValue(attr string, v types.AttributeValue) string {
	ph := u.value(v)
	u.set = append(u.set, u.name(attr)+" = "+ph)
	return ph
}

// setTime stores t, or removes the attribute for the zero time.
func (u *historyUpdate) setTime(attr string, t time.Time) {
	n, err := state.Nanos(t)
	switch {
	case err != nil:
		if u.err == nil {
			u.err = fmt.Errorf("%s: %w", attr, err)
		}
	case n == nil:
		u.removeAttr(attr)
	default:
		u.setValue(attr, num(*n))
	}
}

// setString stores s, or removes the attribute for "".
func (u *historyUpdate) setString(attr, s string) {
	if s == "" {
		u.removeAttr(attr)
		return
	}
	u.setValue(attr, str(s))
}

func (u *historyUpdate) setIfNotExists(attr string, v types.AttributeValue) {
	n := u.name(attr)
	u.set = append(u.set, n+" = if_not_exists("+n+", "+u.value(v)+")")
}

func (u *historyUpdate) addNumber(attr string, n int64) {
	u.add = append(u.add, u.name(attr)+" "+u.value(num(n)))
}

func (u *historyUpdate) removeAttr(attr string) { u.remove = append(u.remove, u.name(attr)) }

// and adds a condition, to hold together with any already there.
func (u *historyUpdate) and(cond string) {
	if u.cond == "" {
		u.cond = cond
		return
	}
	u.cond = "(" + u.cond + ") AND (" + cond + ")"
}

// fence makes the update a fenced write: it applies only while token is the
// item's LeaseToken. Token 0 (an unleased writer) adds no condition. An
// item without a lease has no LeaseToken, so it fails the condition, and
// UpdateItem does not create an item whose condition failed.
func (u *historyUpdate) fence(token int64) {
	if token != 0 {
		u.and(u.name(attrLeaseToken) + " = " + u.value(num(token)))
	}
}

func (u *historyUpdate) expression() string {
	var parts []string
	for _, clause := range []struct {
		verb  string
		items []string
	}{{"SET", u.set}, {"ADD", u.add}, {"REMOVE", u.remove}} {
		if len(clause.items) > 0 {
			parts = append(parts, clause.verb+" "+strings.Join(clause.items, ", "))
		}
	}
	return strings.Join(parts, " ")
}

// updateHistory applies u to the history item of connection name, creating
// the item if needed (so the store knows every connection it was told
// about), and returns the attributes it set, as they are now. Every write
// to a history item goes through here; fenced writes carry their lease
// check in u's condition (see fence), evaluated by DynamoDB inside the
// write.
func (s *Store) updateHistory(ctx context.Context, name string, u *historyUpdate) (map[string]types.AttributeValue, error) {
	if u.err != nil {
		return nil, u.err
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                 &s.cfg.HistoryTable,
		Key:                       map[string]types.AttributeValue{attrListID: str(name)},
		UpdateExpression:          aws.String(u.expression()),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: u.values,
		ReturnValues:              types.ReturnValueUpdatedNew,
	}
	if u.cond != "" {
		in.ConditionExpression = &u.cond
	}
	if len(in.ExpressionAttributeValues) == 0 {
		in.ExpressionAttributeValues = nil // DynamoDB refuses an empty map
	}
	out, err := s.client.UpdateItem(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.Attributes, nil
}

// write checks what every mutation needs, then runs fn, naming the
// operation, the connection and the table in any error fn returns.
func (s *Store) write(op, name string, fn func() (table string, err error)) error {
	if name == "" {
		return s.opError(op, name, "", errors.New("empty connection name"))
	}
	if table, err := fn(); err != nil {
		return s.opError(op, name, table, err)
	}
	return nil
}

// StartRun implements state.Store.
func (s *Store) StartRun(ctx context.Context, name string, at time.Time) error {
	return s.write("start run", name, func() (string, error) {
		u := newHistoryUpdate()
		u.setTime(attrLastAttempt, at)
		if n, err := state.Nanos(at); err == nil && n != nil {
			u.setIfNotExists(attrFirstAttempt, num(*n))
		}
		_, err := s.updateHistory(ctx, name, u)
		return s.cfg.HistoryTable, err
	})
}

// SaveCheckpoint implements state.Store.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, cp state.Checkpoint) error {
	return s.write("save checkpoint", name, func() (string, error) {
		enc, err := state.EncodeCheckpoint(cp)
		if err != nil {
			return "", err
		}
		u := newHistoryUpdate()
		u.setValue(attrCheckpoint, str(enc))
		u.fence(cp.Token)
		_, err = s.updateHistory(ctx, name, u)
		return s.fenced(ctx, name, cp.Token, err)
	})
}

// CompleteRun implements state.Store. Without transactions it is several writes,
// in the order that keeps a crash between them harmless: first the history
// item (watermark and counts, one atomic conditional write), then the
// covered failures are deleted, then the run is appended. A crash part-way
// leaves a covered failure pending (the next completed run resolves it) or
// a run missing from the history, never a wrong watermark.
func (s *Store) CompleteRun(ctx context.Context, run state.Run) error {
	return s.write("complete run", run.Connection, func() (string, error) {
		// A zero window end would read as "nothing delivered" and a zero
		// finish time could not resolve failures; both mean a caller bug.
		if run.WindowEnd.IsZero() {
			return "", errors.New("run has no window end")
		}
		if run.Finished.IsZero() {
			return "", errors.New("run has no finish time")
		}
		end, err := state.Nanos(run.WindowEnd)
		if err != nil {
			return "", fmt.Errorf("window end: %w", err)
		}
		id, err := s.runID(run)
		if err != nil {
			return "", err
		}
		runItem, err := encodeRun(run, id)
		if err != nil {
			return "", err
		}

		// The watermark moves only if the stored one is older, compared by
		// DynamoDB inside the write, so two workers completing in either
		// order leave the later window end. When another worker has gone
		// further, the condition fails and everything else is still
		// recorded, by a second write without the watermark.
		progress := func(withWatermark bool) *historyUpdate {
			u := newHistoryUpdate()
			if withWatermark {
				ph := u.setValue(attrWatermark, num(*end))
				u.setValue(attrLastImportTime, str(isoMirror(run.WindowEnd)))
				w := u.name(attrWatermark)
				u.cond = "attribute_not_exists(" + w + ") OR " + w + " < " + ph
			}
			u.removeAttr(attrCheckpoint)
			u.removeAttr(attrLastError)
			u.removeAttr(attrLastErrorAt)
			u.setTime(attrLastSuccess, run.Finished)
			u.setValue(attrLastRead, num(run.Read))
			u.setValue(attrLastDelivered, num(run.Delivered))
			u.addNumber(attrTotalDelivered, run.Delivered)
			u.addNumber(attrRunsRecorded, 1)
			u.fence(run.Token)
			return u
		}
		// With a token, the first write's condition also fails when the run
		// is fenced; so does the second's then, and nothing is written.
		updated, err := s.updateHistory(ctx, run.Connection, progress(true))
		var behind *types.ConditionalCheckFailedException
		if errors.As(err, &behind) {
			updated, err = s.updateHistory(ctx, run.Connection, progress(false))
		}
		if err != nil {
			return s.fenced(ctx, run.Connection, run.Token, err)
		}
		if err := s.resolveFailures(ctx, run.Connection, *end); err != nil {
			return s.cfg.FailuresTable, err
		}
		return s.cfg.RunsTable, s.appendRun(ctx, run.Connection, runItem, updated)
	})
}

// FailRun implements state.Store: LastError and LastErrorAt (the run's
// end) on the history item, then the run appended (see CompleteRun for
// why in that order).
func (s *Store) FailRun(ctx context.Context, run state.Run) error {
	return s.write("fail run", run.Connection, func() (string, error) {
		id, err := s.runID(run)
		if err != nil {
			return "", err
		}
		runItem, err := encodeRun(run, id)
		if err != nil {
			return "", err
		}
		u := newHistoryUpdate()
		u.setString(attrLastError, run.Error)
		u.setTime(attrLastErrorAt, run.Finished)
		u.addNumber(attrRunsRecorded, 1)
		u.fence(run.Token)
		updated, err := s.updateHistory(ctx, run.Connection, u)
		if err != nil {
			return s.fenced(ctx, run.Connection, run.Token, err)
		}
		return s.cfg.RunsTable, s.appendRun(ctx, run.Connection, runItem, updated)
	})
}

// appendRun puts a run into the history, then trims the history when the
// count the history update returned says it is time.
func (s *Store) appendRun(ctx context.Context, name string, runItem item, updated map[string]types.AttributeValue) error {
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.cfg.RunsTable,
		Item:      runItem,
		// Run ids are unique by construction; the condition makes sure a
		// run can never overwrite another.
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": attrListID},
	})
	if err != nil {
		return err
	}
	if dueForTrim(updated, attrRunsRecorded, s.trimEvery) {
		return trim(ctx, s.client, s.cfg.RunsTable, attrRunID, name, str(rosterPrefix), s.keepRuns)
	}
	return nil
}

// AddFailure implements state.Store: the failure first (it is the data), then the
// history item, so the store knows the connection and counts the append.
func (s *Store) AddFailure(ctx context.Context, f state.Failure) error {
	return s.write("add failure", f.Connection, func() (string, error) {
		key, err := failureKey(f)
		if err != nil {
			return "", err
		}
		it, err := encodeFailure(f, key)
		if err != nil {
			return "", err
		}
		// Bump the key past failures recorded at the same nanosecond. The
		// bound only stops a runaway loop: each step needs another failure
		// at the very next nanosecond.
		for tries := 0; ; tries++ {
			_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
				TableName:                &s.cfg.FailuresTable,
				Item:                     it,
				ConditionExpression:      aws.String("attribute_not_exists(#id)"),
				ExpressionAttributeNames: map[string]string{"#id": attrListID},
			})
			var taken *types.ConditionalCheckFailedException
			if !errors.As(err, &taken) || tries == 1000 {
				break
			}
			key++
			it[attrFailureKey] = num(key)
		}
		if err != nil {
			return s.cfg.FailuresTable, err
		}
		u := newHistoryUpdate()
		u.addNumber(attrFailuresRecorded, 1)
		updated, err := s.updateHistory(ctx, f.Connection, u)
		if err != nil {
			return s.cfg.HistoryTable, err
		}
		if dueForTrim(updated, attrFailuresRecorded, s.trimEvery) {
			return s.cfg.FailuresTable, trim(ctx, s.client, s.cfg.FailuresTable, attrFailureKey, f.Connection, nil, s.keepFailures)
		}
		return "", nil
	})
}

// resolveFailures deletes the connection's failures that a completed window
// ending at end covers: those whose window ends no later (or that have no
// window: they predate every window, like the original importer's). The
// table then holds only pending failures, so this query, made by every
// completed run, reads next to nothing.
func (s *Store) resolveFailures(ctx context.Context, name string, end int64) error {
	keys, err := queryKeys(ctx, s.client, &dynamodb.QueryInput{
		TableName:              &s.cfg.FailuresTable,
		KeyConditionExpression: aws.String("#id = :id"),
		FilterExpression:       aws.String("attribute_not_exists(#end) OR #end <= :end"),
		ExpressionAttributeNames: map[string]string{
			"#id": attrListID, "#key": attrFailureKey, "#end": attrWindowEnd},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(name), ":end": num(end)},
		ProjectionExpression:      aws.String("#id, #key"),
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return err
	}
	return deleteKeys(ctx, s.client, s.cfg.FailuresTable, keys)
}
