package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/chimport/chimport/internal/state"
)

// Folding: the deltas into the buckets, under optimistic concurrency on
// the meta item (see the package doc).

const (
	// maxFolded bounds the meta item's list of folded groups (16 bytes
	// each): a fold takes at most this many groups at once, oldest first.
	maxFolded = 8192
	// foldTries bounds how often a fold or a read starts over because
	// another fold committed in between; each retry needs a fold of
	// another writer to commit in that gap.
	foldTries = 16
	// orphanAge is when a delta group that is still missing parts is
	// taken for the leftover of a writer that failed part-way, and
	// deleted. Its writer's UpdateRoster failed, so no caller relies on it.
	// The age is the folder's clock against the writer's, as lease expiry
	// is: a day is far beyond any write and any skew of working clocks.
	orphanAge = 24 * time.Hour
)

// errFoldConflict: another fold committed while this one worked; start over.
var errFoldConflict = errors.New("another fold committed first")

// fold folds every complete delta group of the connection into its
// buckets, and returns the meta it committed, or found when there was
// nothing to fold.
//
// A fold that loses its commit to another starts over, after a random
// pause that grows with each loss. It is done as soon as a meta item
// lists every group its first attempt found: that roster was committed
// during the call and holds every change that completed before it, which
// is all an exact count needs; so two folders in a race end at the
// first commit.
func (s *Store) fold(ctx context.Context, name string) (rosterMeta, error) {
	var need []groupID // what the first attempt found to fold
	for conflicts := 0; ; {
		m, more, err := s.foldOnce(ctx, name, &need)
		switch {
		case errors.Is(err, errFoldConflict):
			if conflicts++; conflicts == foldTries {
				return m, fmt.Errorf("the roster kept changing under this fold (%d tries)", conflicts)
			}
			if err := conflictPause(ctx, conflicts); err != nil {
				return m, err
			}
		case err != nil || !more:
			return m, err
		}
	}
}

// conflictPause waits before the next try of a fold or a read that lost
// a race with another fold for the n-th time: a random while, up to a
// limit that doubles with n, so racers fall out of step.
func conflictPause(ctx context.Context, n int) error {
	select {
	case <-time.After(time.Duration(rand.Int64N(int64(10*time.Millisecond) << min(n, 6)))):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// foldOnce is one fold: read the meta item and the deltas, merge the
// deltas not yet folded into the buckets they touch, write those buckets
// as new items, and commit a meta item that names them, on condition that
// the meta item is still the one read. Only then are the items it
// replaced deleted. more says groups were left for another round (see
// maxFolded).
func (s *Store) foldOnce(ctx context.Context, name string, need *[]groupID) (_ rosterMeta, more bool, _ error) {
	m, err := s.readMeta(ctx, name)
	if err != nil {
		return m, false, err
	}
	if *need != nil && !slices.ContainsFunc(*need, func(g groupID) bool { return !m.isFolded(g) }) {
		return m, false, nil
	}
	groups, err := s.readDeltas(ctx, name)
	if err != nil {
		return m, false, err
	}
	var todo []*deltaGroup
	var stillFolded []groupID
	var tidy []map[string]types.AttributeValue
	for _, g := range groups {
		switch {
		case m.isFolded(g.id):
			// Folded, but its delete has not happened yet, or failed: it
			// stays on the list, and is deleted (again).
			stillFolded = append(stillFolded, g.id)
			tidy = append(tidy, g.itemKeys(name)...)
		case !g.complete():
			if s.now().Sub(g.id.time()) > orphanAge {
				tidy = append(tidy, g.itemKeys(name)...)
			}
		default:
			todo = append(todo, g)
		}
	}
	if len(todo) == 0 {
		s.tidy(ctx, tidy)
		return m, false, nil
	}
	if *need == nil {
		for _, g := range todo {
			*need = append(*need, g.id)
		}
	}
	room := maxFolded - len(stillFolded)
	if room <= 0 {
		return m, false, fmt.Errorf("%d folded roster deltas could not be deleted", len(stillFolded))
	}
	if len(todo) > room {
		todo, more = todo[:room], true
	}

	plan, err := s.planFold(ctx, name, m, opsOf(todo))
	if missing, ok := errors.AsType[*missingBucketError](err); ok {
		err = s.missingBucket(ctx, name, m, missing)
	}
	if err != nil {
		return m, false, err
	}
	plan.next.folded = stillFolded
	for _, g := range todo {
		plan.next.folded = append(plan.next.folded, g.id)
		tidy = append(tidy, g.itemKeys(name)...)
	}
	sortGroups(plan.next.folded)

	puts := make([]types.WriteRequest, len(plan.puts))
	for i, it := range plan.puts {
		puts[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
	}
	if err := batchWrite(ctx, s.client, s.cfg.RunsTable, puts); err != nil {
		return m, false, err
	}
	if err := s.commitMeta(ctx, name, m, plan.next); err != nil {
		var lost *types.ConditionalCheckFailedException
		if errors.As(err, &lost) {
			s.tidy(ctx, plan.written(name))
			return m, false, errFoldConflict
		}
		return m, false, err
	}
	s.tidy(ctx, append(plan.superseded, tidy...))
	return plan.next, more, nil
}

// foldPlan is what a fold writes: the bucket items, and the meta item that
// names them in place of the ones it supersedes.
type foldPlan struct {
	next       rosterMeta
	puts       []item
	superseded []map[string]types.AttributeValue
}

func (p foldPlan) written(name string) []map[string]types.AttributeValue {
	keys := make([]map[string]types.AttributeValue, len(p.puts))
	for i, it := range p.puts {
		keys[i] = map[string]types.AttributeValue{attrListID: str(name), attrRunID: it[attrRunID]}
	}
	return keys
}

// planFold applies ops to the buckets of m they touch. When the roster
// outgrows its buckets (bitsFor), every bucket is read and the roster is
// split into more of them.
func (s *Store) planFold(ctx context.Context, name string, m rosterMeta, ops []op) (foldPlan, error) {
	ranges := bucketRanges(ops, m.bits)
	touched := make([]int, 0, len(ranges))
	for _, r := range ranges {
		touched = append(touched, r.bucket)
	}
	content, missing, err := s.readBuckets(ctx, name, m, touched)
	if err != nil {
		return foldPlan{}, err
	}
	if missing >= 0 {
		return foldPlan{}, &missingBucketError{missing}
	}
	next := m
	next.exists, next.version = true, m.version+1
	changed := map[int][]state.MemberID{}
	for _, r := range ranges {
		old := content[r.bucket]
		ids := apply(old, ops[r.from:r.to])
		if !slices.Equal(ids, old) {
			changed[r.bucket] = ids
			next.size += int64(len(ids) - len(old))
		}
	}
	if bits := bitsFor(next.size); bits > m.bits {
		return s.planSplit(ctx, name, m, next, content, changed, bits)
	}

	gen := newGeneration()
	next.gens = append([]uint64(nil), m.gens...)
	var plan foldPlan
	for _, b := range touched {
		ids, ok := changed[b]
		if !ok {
			continue
		}
		if old := m.gens[b]; old != 0 {
			plan.superseded = append(plan.superseded, rosterKey(name, bucketKey(b, old)))
		}
		next.gens[b] = 0
		if len(ids) > 0 {
			it, err := encodeBucket(name, b, gen, ids)
			if err != nil {
				return foldPlan{}, err
			}
			plan.puts = append(plan.puts, it)
			next.gens[b] = gen
		}
	}
	plan.next = next
	return plan, nil
}

// planSplit rewrites the whole roster into 1<<bits buckets: the buckets of
// m, with changed in place of the ones the fold changed.
func (s *Store) planSplit(ctx context.Context, name string, m, next rosterMeta,
	content, changed map[int][]state.MemberID, bits uint) (foldPlan, error) {
	var rest []int
	for _, b := range nonEmpty(m) {
		if _, read := content[b]; !read {
			rest = append(rest, b)
		}
	}
	more, missing, err := s.readBuckets(ctx, name, m, rest)
	if err != nil {
		return foldPlan{}, err
	}
	if missing >= 0 {
		return foldPlan{}, &missingBucketError{missing}
	}
	all := make([]state.MemberID, 0, next.size)
	var plan foldPlan
	for b, old := range m.gens {
		ids, ok := changed[b]
		if !ok {
			ids = content[b]
			if ids == nil {
				ids = more[b]
			}
		}
		all = append(all, ids...)
		if old != 0 {
			plan.superseded = append(plan.superseded, rosterKey(name, bucketKey(b, old)))
		}
	}
	gen := newGeneration()
	next.bits, next.gens = bits, make([]uint64, 1<<bits)
	for from := 0; from < len(all); {
		b := bucketOf(all[from], bits)
		to := from
		for to < len(all) && bucketOf(all[to], bits) == b {
			to++
		}
		it, err := encodeBucket(name, b, gen, all[from:to])
		if err != nil {
			return foldPlan{}, err
		}
		plan.puts = append(plan.puts, it)
		next.gens[b] = gen
		from = to
	}
	plan.next = next
	return plan, nil
}

// missingBucketError: a bucket item the meta item names is not there.
// Either a fold committed since the meta item was read (and deleted what
// it replaced), or the roster is damaged; missingBucket tells which.
type missingBucketError struct{ bucket int }

func (e *missingBucketError) Error() string {
	return fmt.Sprintf("roster bucket %d is missing", e.bucket)
}

func (s *Store) missingBucket(ctx context.Context, name string, m rosterMeta, missing *missingBucketError) error {
	version, err := s.metaVersion(ctx, name)
	if err != nil {
		return err
	}
	if version != m.version {
		return errFoldConflict
	}
	return damaged(m, missing.bucket)
}

func damaged(m rosterMeta, bucket int) error {
	return fmt.Errorf("the roster is damaged: bucket %d's item (generation %016x of version %d) is missing",
		bucket, m.gens[bucket], m.version)
}

// commitMeta puts next in place of m, on condition that m is still the
// meta item (its Version, or its absence).
func (s *Store) commitMeta(ctx context.Context, name string, m, next rosterMeta) error {
	in := &dynamodb.PutItemInput{
		TableName:                &s.cfg.RunsTable,
		Item:                     next.encode(name),
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": attrListID},
	}
	if m.exists {
		in.ConditionExpression = aws.String("#v = :v")
		in.ExpressionAttributeNames = map[string]string{"#v": attrVersion}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": num(m.version)}
	}
	_, err := s.client.PutItem(ctx, in)
	return err
}

func (s *Store) readMeta(ctx context.Context, name string) (rosterMeta, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.cfg.RunsTable,
		Key:            rosterKey(name, metaKey),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return rosterMeta{}, err
	}
	return decodeMeta(out.Item)
}

// metaVersion is the meta item's Version alone; 0 when there is none.
func (s *Store) metaVersion(ctx context.Context, name string) (int64, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                &s.cfg.RunsTable,
		Key:                      rosterKey(name, metaKey),
		ProjectionExpression:     aws.String("#v"),
		ExpressionAttributeNames: map[string]string{"#v": attrVersion},
		ConsistentRead:           aws.Bool(true),
	})
	if err != nil {
		return 0, err
	}
	r := &reader{item: out.Item}
	return r.int(attrVersion), r.err
}

// readDeltas returns the connection's delta groups in key order.
func (s *Store) readDeltas(ctx context.Context, name string) ([]*deltaGroup, error) {
	items, err := queryKeys(ctx, s.client, &dynamodb.QueryInput{
		TableName:                 &s.cfg.RunsTable,
		KeyConditionExpression:    aws.String("#id = :id AND begins_with(#key, :prefix)"),
		ExpressionAttributeNames:  map[string]string{"#id": attrListID, "#key": attrRunID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(name), ":prefix": str(deltaPrefix)},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	return groupDeltas(items)
}

// readBuckets reads the items of the given buckets of m, skipping empty
// ones. missing is the first bucket whose item is not there, or -1.
func (s *Store) readBuckets(ctx context.Context, name string, m rosterMeta, buckets []int) (_ map[int][]state.MemberID, missing int, _ error) {
	byKey := map[string]int{}
	var keys []map[string]types.AttributeValue
	for _, b := range buckets {
		if g := m.gens[b]; g != 0 {
			k := bucketKey(b, g)
			byKey[k] = b
			keys = append(keys, rosterKey(name, k))
		}
	}
	items, err := batchGet(ctx, s.client, s.cfg.RunsTable, keys)
	if err != nil {
		return nil, -1, err
	}
	content := make(map[int][]state.MemberID, len(buckets))
	for _, it := range items {
		r := &reader{item: it}
		b, ok := byKey[r.string(attrRunID)]
		ids := r.ids(attrIDs)
		if r.err != nil {
			return nil, -1, r.err
		}
		if ok {
			content[b] = ids
		}
	}
	missing = -1
	for _, b := range buckets {
		if _, read := content[b]; !read && m.gens[b] != 0 && (missing < 0 || b < missing) {
			missing = b
		}
	}
	return content, missing, nil
}

// tidy deletes items nothing reads any more, as far as it gets: what it
// leaves is never read (a superseded bucket), or deleted by the next fold
// (a folded delta).
func (s *Store) tidy(ctx context.Context, keys []map[string]types.AttributeValue) {
	if s.noTidy || len(keys) == 0 {
		return
	}
	_ = deleteKeys(ctx, s.client, s.cfg.RunsTable, keys)
}
