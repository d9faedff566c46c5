package dynamodb_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/dynamodb"
)

func randomIDs(r *rand.Rand, n int) []state.MemberID {
	out := make([]state.MemberID, n)
	for i := range out {
		binary.BigEndian.PutUint64(out[i][:8], r.Uint64())
		binary.BigEndian.PutUint64(out[i][8:], r.Uint64())
	}
	return out
}

func sortedSet(set map[state.MemberID]bool) []state.MemberID {
	out := make([]state.MemberID, 0, len(set))
	for id, in := range set {
		if in {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, func(a, b state.MemberID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

func updateRoster(t *testing.T, s state.Store, name string, c state.RosterChange) {
	t.Helper()
	if err := s.UpdateRoster(context.Background(), name, c); err != nil {
		t.Fatal(err)
	}
}

// wantRoster checks the roster and its size, and that the size is
// recorded on the connection.
func wantRoster(t *testing.T, s state.Store, name string, want []state.MemberID) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Roster(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("roster of %s has %d ids, want %d, or other ones", name, len(got), len(want))
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("first difference at %d: %s, want %s", i, got[i], want[i])
				break
			}
		}
	}
	n, err := s.RosterSize(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(want)) {
		t.Errorf("RosterSize = %d, want %d", n, len(want))
	}
	c, err := s.Connection(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if c.Roster.Members != int64(len(want)) {
		t.Errorf("RosterState.Members = %d, want %d", c.Roster.Members, len(want))
	}
}

// rosterItems returns the connection's roster items whose keys start
// with prefix ("roster/d/" for deltas, "roster/b/" for buckets), as the
// console would list them.
func rosterItems(t *testing.T, s *dynamodb.Store, name, prefix string) []map[string]types.AttributeValue {
	t.Helper()
	var out []map[string]types.AttributeValue
	pages := ddb.NewQueryPaginator(rawClient(t), &ddb.QueryInput{
		TableName:              aws.String(s.Config().RunsTable),
		KeyConditionExpression: aws.String("ListId = :id AND begins_with(RunId, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":id": &types.AttributeValueMemberS{Value: name}, ":p": &types.AttributeValueMemberS{Value: prefix}},
		ConsistentRead: aws.Bool(true),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Items...)
	}
	return out
}

// metaBits is how many bits of prefix the roster's buckets are: the
// meta item's Bits.
func metaBits(t *testing.T, s *dynamodb.Store, name string) int {
	t.Helper()
	out, err := rawClient(t).GetItem(context.Background(), &ddb.GetItemInput{
		TableName: aws.String(s.Config().RunsTable),
		Key: map[string]types.AttributeValue{"ListId": &types.AttributeValueMemberS{Value: name},
			"RunId": &types.AttributeValueMemberS{Value: "roster/meta"}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	n, ok := out.Item["Bits"].(*types.AttributeValueMemberN)
	if !ok {
		t.Fatalf("meta item %v has no Bits", out.Item)
	}
	bits, _ := strconv.Atoi(n.Value)
	return bits
}

// TestDynamoDBRosterCalls counts what the roster costs in DynamoDB calls:
// a first sync of 200,000 members (200 changes of 1,000 ids, then one
// RosterSize) must stay well within its share of the run's 1,000 calls,
// and a later run of 100 changes, from a process of its own, must cost a
// handful, sending bytes in proportion to the change.
func TestDynamoDBRosterCalls(t *testing.T) {
	ctx := context.Background()
	s, url := initDynamoDB(t)
	calls := dynamodb.CountCalls(s)
	r := rand.New(rand.NewPCG(7, 8))
	const members, batch = 200_000, 1_000
	all := randomIDs(r, members)

	start := time.Now()
	for part := range slices.Chunk(all, batch) {
		updateRoster(t, s, "news", state.RosterChange{Add: part})
	}
	writes, writeCalls, writeBytes := calls.Take()
	wrote := time.Since(start)
	start = time.Now()
	n, err := s.RosterSize(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	folds, foldCalls, foldBytes := calls.Take()
	folded := time.Since(start)
	if n != members {
		t.Errorf("RosterSize = %d, want %d", n, members)
	}
	t.Logf("first sync, %d ids: %d UpdateRoster calls cost %d DynamoDB calls (%v), %d KB, in %v",
		members, members/batch, writeCalls, writes, writeBytes>>10, wrote.Round(time.Millisecond))
	t.Logf("first sync: RosterSize cost %d calls (%v), %d KB, in %v; %d in all",
		foldCalls, folds, foldBytes>>10, folded.Round(time.Millisecond), writeCalls+foldCalls)
	if total := writeCalls + foldCalls; total >= 500 {
		t.Errorf("the first sync's roster cost %d calls, want fewer than 500", total)
	}

	// A later run: another process adds 50 members and removes 50.
	later := openDynamoDB(t, url)
	calls = dynamodb.CountCalls(later)
	fresh := randomIDs(r, 50)
	gone := all[1000:1050]
	start = time.Now()
	updateRoster(t, later, "news", state.RosterChange{Add: fresh})
	updateRoster(t, later, "news", state.RosterChange{Remove: gone})
	if n, err = later.RosterSize(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	byName, total, sent := calls.Take()
	t.Logf("later run, 100 changes: %d calls (%v), %d KB sent, in %v", total, byName, sent>>10, time.Since(start).Round(time.Millisecond))
	if total >= 20 {
		t.Errorf("100 changes cost %d calls, want fewer than 20", total)
	}
	if sent > 1<<20 {
		t.Errorf("100 changes sent %d KB, want at most 1 MB (the roster is %d KB)", sent>>10, members*16>>10)
	}
	if n != members {
		t.Errorf("RosterSize after the later run = %d, want %d", n, members)
	}

	want := map[state.MemberID]bool{}
	for _, id := range append(slices.Clone(all), fresh...) {
		want[id] = true
	}
	for _, id := range gone {
		delete(want, id)
	}
	reader := openDynamoDB(t, url)
	calls = dynamodb.CountCalls(reader)
	start = time.Now()
	wantRoster(t, reader, "news", sortedSet(want))
	byName, total, _ = calls.Take()
	t.Logf("reading it back: Roster, RosterSize and Connection cost %d calls (%v), in %v",
		total, byName, time.Since(start).Round(time.Millisecond))

	// Folding leaves no delta and no superseded bucket behind.
	if d := rosterItems(t, s, "news", "roster/d/"); len(d) != 0 {
		t.Errorf("%d delta items left after folding", len(d))
	}
	if b, bits := len(rosterItems(t, s, "news", "roster/b/")), metaBits(t, s, "news"); b != 1<<bits {
		t.Errorf("%d bucket items, want %d (%d bits)", b, 1<<bits, bits)
	}
}

// TestDynamoDBRosterTwoHandlesFold: two workers write and fold one roster
// at once, each handle with writers that add their own ids and remove
// some of them again, while others count the roster over and over, and
// folds start inside UpdateRoster too. Optimistic commits of the meta
// item lose no id, and resurrect none.
func TestDynamoDBRosterTwoHandlesFold(t *testing.T) {
	ctx := context.Background()
	a, url := initDynamoDB(t)
	b := openDynamoDB(t, url)
	for _, s := range []*dynamodb.Store{a, b} {
		dynamodb.SetFoldAfter(s, 1<<30, 3) // a fold after every third change
	}
	const writers, changes, per = 6, 12, 40
	r := rand.New(rand.NewPCG(5, 6))
	want := map[state.MemberID]bool{}
	var plans [writers][]state.RosterChange
	for w := range writers {
		for c := range changes {
			add := randomIDs(r, per)
			for _, id := range add {
				want[id] = true
			}
			change := state.RosterChange{Add: add}
			if c > 0 {
				change.Remove = plans[w][c-1].Add[:per/4] // some of the previous change's ids leave
				for _, id := range change.Remove {
					want[id] = false
				}
			}
			plans[w] = append(plans[w], change)
		}
	}

	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		s := []*dynamodb.Store{a, b}[w%2]
		wg.Go(func() {
			for _, c := range plans[w] {
				if err := s.UpdateRoster(ctx, "news", c); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var counters sync.WaitGroup
	for _, s := range []*dynamodb.Store{a, b} {
		counters.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.RosterSize(ctx, "news"); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.Roster(ctx, "news"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	counters.Wait()

	ids := sortedSet(want)
	wantRoster(t, a, "news", ids)
	wantRoster(t, b, "news", ids)
	if d := rosterItems(t, a, "news", "roster/d/"); len(d) != 0 {
		t.Errorf("%d delta items left after folding", len(d))
	}
}

// TestDynamoDBRosterLateWriter: a delta whose key sorts before deltas
// already folded (its writer's clock is an hour behind) is folded all the
// same: the meta item lists the folded deltas rather than trusting keys
// to arrive in order.
func TestDynamoDBRosterLateWriter(t *testing.T) {
	a, url := initDynamoDB(t)
	b := openDynamoDB(t, url)
	dynamodb.SetClock(b, func() time.Time { return time.Now().Add(-time.Hour) })
	x, y := state.MemberID{1}, state.MemberID{2}
	updateRoster(t, a, "news", state.RosterChange{Add: []state.MemberID{x}})
	wantRoster(t, a, "news", []state.MemberID{x})
	updateRoster(t, b, "news", state.RosterChange{Add: []state.MemberID{y}})
	wantRoster(t, a, "news", []state.MemberID{x, y})
}

// TestDynamoDBRosterClockStepsBack: one handle's changes apply in the
// order it made them, whatever its clock does, folded together or apart.
func TestDynamoDBRosterClockStepsBack(t *testing.T) {
	s, _ := initDynamoDB(t)
	var mu sync.Mutex
	at := time.Now()
	dynamodb.SetClock(s, func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		at = at.Add(-time.Minute)
		return at
	})
	x, y := state.MemberID{1}, state.MemberID{2}
	updateRoster(t, s, "news", state.RosterChange{Add: []state.MemberID{x, y}})
	updateRoster(t, s, "news", state.RosterChange{Remove: []state.MemberID{x}})
	wantRoster(t, s, "news", []state.MemberID{y})
	updateRoster(t, s, "news", state.RosterChange{Add: []state.MemberID{x}})
	updateRoster(t, s, "news", state.RosterChange{Remove: []state.MemberID{y}})
	updateRoster(t, s, "news", state.RosterChange{Add: []state.MemberID{y}})
	updateRoster(t, s, "news", state.RosterChange{Remove: []state.MemberID{x}})
	wantRoster(t, s, "news", []state.MemberID{y})
}

// TestDynamoDBRosterLeftoverDelta: a folded delta whose delete failed is
// never applied again, even after a later change undid it.
func TestDynamoDBRosterLeftoverDelta(t *testing.T) {
	ctx := context.Background()
	s, _ := initDynamoDB(t)
	x, z := state.MemberID{1}, state.MemberID{3}
	updateRoster(t, s, "news", state.RosterChange{Add: []state.MemberID{x}})
	dynamodb.SetTidy(s, false)
	wantRoster(t, s, "news", []state.MemberID{x})
	leftover := rosterItems(t, s, "news", "roster/d/")
	if len(leftover) != 1 {
		t.Fatalf("%d delta items, want the one of the add", len(leftover))
	}
	dynamodb.SetTidy(s, true)
	updateRoster(t, s, "news", state.RosterChange{Remove: []state.MemberID{x}})
	wantRoster(t, s, "news", nil)
	// The add's delete failed after all; the remove's did not.
	putItem(t, s.Config().RunsTable, leftover[0])
	wantRoster(t, s, "news", nil)
	updateRoster(t, s, "news", state.RosterChange{Add: []state.MemberID{z}})
	wantRoster(t, s, "news", []state.MemberID{z})
	if d := rosterItems(t, s, "news", "roster/d/"); len(d) != 0 {
		t.Errorf("%d delta items left; the leftover should be deleted by the next fold", len(d))
	}
	if _, err := s.Roster(ctx, "news"); err != nil {
		t.Fatal(err)
	}
}

// TestDynamoDBRosterLargeChange: a change too large for one item is split
// into parts, applied all together or not at all: a change missing a part
// (its writer failed part-way) is not applied, and a day later it is
// deleted.
func TestDynamoDBRosterLargeChange(t *testing.T) {
	ctx := context.Background()
	s, _ := initDynamoDB(t)
	now := time.Now()
	var mu sync.Mutex
	dynamodb.SetClock(s, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	r := rand.New(rand.NewPCG(9, 10))
	big := randomIDs(r, 40_000)
	updateRoster(t, s, "news", state.RosterChange{Add: big})
	if parts := len(rosterItems(t, s, "news", "roster/d/")); parts != 3 {
		t.Errorf("a change of 40,000 ids is %d items, want 3", parts)
	}
	set := map[state.MemberID]bool{}
	for _, id := range big {
		set[id] = true
	}
	wantRoster(t, s, "news", sortedSet(set))

	// Another large change loses a part.
	updateRoster(t, s, "news", state.RosterChange{Add: randomIDs(r, 20_000), Remove: big[:100]})
	parts := rosterItems(t, s, "news", "roster/d/")
	if len(parts) != 2 {
		t.Fatalf("%d delta items, want 2 for 20,100 ids", len(parts))
	}
	key := parts[1]
	if _, err := rawClient(t).DeleteItem(ctx, &ddb.DeleteItemInput{TableName: aws.String(s.Config().RunsTable),
		Key: map[string]types.AttributeValue{"ListId": key["ListId"], "RunId": key["RunId"]}}); err != nil {
		t.Fatal(err)
	}
	wantRoster(t, s, "news", sortedSet(set))
	if n := len(rosterItems(t, s, "news", "roster/d/")); n != 1 {
		t.Errorf("%d delta items, want the part left of the incomplete change", n)
	}
	mu.Lock()
	now = now.Add(25 * time.Hour)
	mu.Unlock()
	updateRoster(t, s, "news", state.RosterChange{Add: big[:1]}) // something to fold
	wantRoster(t, s, "news", sortedSet(set))
	if n := len(rosterItems(t, s, "news", "roster/d/")); n != 0 {
		t.Errorf("%d delta items, want none: the incomplete change is a day old", n)
	}
}

// TestDynamoDBRosterGrows: as the roster grows, folds split it into more
// buckets, and delete the buckets they replace.
func TestDynamoDBRosterGrows(t *testing.T) {
	s, _ := initDynamoDB(t)
	r := rand.New(rand.NewPCG(11, 12))
	set := map[state.MemberID]bool{}
	for _, step := range []struct{ add, bits int }{{100, 0}, {200, 1}, {1000, 3}, {10, 3}, {20_000, 7}} {
		change := state.RosterChange{Add: randomIDs(r, step.add)}
		for _, id := range change.Add {
			set[id] = true
		}
		for id := range set {
			if len(change.Remove) == step.add/10 {
				break
			}
			change.Remove = append(change.Remove, id)
			delete(set, id)
		}
		updateRoster(t, s, "news", change)
		wantRoster(t, s, "news", sortedSet(set))
		if got := metaBits(t, s, "news"); got != step.bits {
			t.Errorf("%d ids: %d bits of buckets, want %d", len(set), got, step.bits)
		}
		if n := len(rosterItems(t, s, "news", "roster/b/")); n != 1<<step.bits {
			t.Errorf("%d ids: %d bucket items, want %d", len(set), n, 1<<step.bits)
		}
	}
}

// TestDynamoDBRosterBesideRuns: the roster's items share the runs table,
// and neither Runs nor the trimming of old runs sees them.
func TestDynamoDBRosterBesideRuns(t *testing.T) {
	ctx := context.Background()
	s, _ := initDynamoDB(t)
	dynamodb.SetRetention(s, 3, 3, 2)
	r := rand.New(rand.NewPCG(13, 14))
	ids := randomIDs(r, 2000)
	set := map[state.MemberID]bool{}
	for i := range 8 {
		part := ids[i*250 : (i+1)*250]
		updateRoster(t, s, "news", state.RosterChange{Add: part})
		for _, id := range part {
			set[id] = true
		}
		if i%2 == 0 {
			if _, err := s.RosterSize(ctx, "news"); err != nil {
				t.Fatal(err)
			}
		}
		complete(t, s, "news", t0.Add(time.Duration(i)*time.Hour))
	}
	runs, err := s.Runs(ctx, "news", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || !runs[0].WindowEnd.Equal(t0.Add(7*time.Hour)) {
		t.Errorf("Runs: %d runs, newest %v; want the newest 3, ending at %v", len(runs), runs[0].WindowEnd, t0.Add(7*time.Hour))
	}
	wantRoster(t, s, "news", sortedSet(set))
}
