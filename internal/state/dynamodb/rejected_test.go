package dynamodb_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/dynamodb"
	"github.com/google/go-cmp/cmp"
)

func recordRejections(t *testing.T, s state.Store, name string, rs ...state.Rejection) {
	t.Helper()
	if err := s.RecordRejections(context.Background(), name, rs); err != nil {
		t.Fatal(err)
	}
}

// attrStrings renders an item's (or a map attribute's) attributes with
// attrString.
func attrStrings(it map[string]types.AttributeValue) map[string]string {
	out := map[string]string{}
	for attr, av := range it {
		out[attr] = attrString(av)
	}
	return out
}

// TestDynamoDBRejectedItems reads the rejected log as the AWS console
// shows it: an item per member in the runs table, keyed by the member id
// in hex, and the summary and the error's time on the history item.
func TestDynamoDBRejectedItems(t *testing.T) {
	ctx := context.Background()
	s, _ := initDynamoDB(t)
	id, err := state.ParseMemberID("62dbd2e1a4c87c3b0cf7e4a5d3c1b2a0")
	if err != nil {
		t.Fatal(err)
	}
	ns := func(at time.Time) string { return "N:" + strconv.FormatInt(at.UnixNano(), 10) }
	recordRejections(t, s, "news", state.Rejection{Member: id, Key: "ann@example.com", Status: 422,
		Reason: `{"error":"bad phone"}`, LastAttempt: t0})
	recordRejections(t, s, "news", state.Rejection{Member: id, Status: 400, LastAttempt: t0.Add(time.Hour)})
	if err := s.NoteError(ctx, "news", "target: 503", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}

	items := rosterItems(t, s, "news", "target/rejected/")
	if len(items) != 1 {
		t.Fatalf("%d entry items, want 1", len(items))
	}
	want := map[string]string{"ListId": "S:news", "RunId": "S:target/rejected/62dbd2e1a4c87c3b0cf7e4a5d3c1b2a0",
		"Status": "N:400", "FirstSeen": ns(t0), "LastAttempt": ns(t0.Add(time.Hour)), "Attempts": "N:2"}
	if d := cmp.Diff(want, attrStrings(items[0])); d != "" {
		t.Errorf("entry item (-want +got):\n%s", d)
	}

	history := getItem(t, s.Config().HistoryTable, "news")
	got := map[string]string{}
	for _, attr := range []string{"RejectedCount", "LastError", "LastErrorAt"} {
		got[attr] = attrString(history[attr])
	}
	if m, ok := history["RejectedSample"].(*types.AttributeValueMemberM); ok {
		for attr, s := range attrStrings(m.Value) {
			got["RejectedSample."+attr] = s
		}
	}
	want = map[string]string{"RejectedCount": "N:1", "LastError": "S:target: 503", "LastErrorAt": ns(t0.Add(2 * time.Hour)),
		"RejectedSample.Member": "S:62dbd2e1a4c87c3b0cf7e4a5d3c1b2a0", "RejectedSample.Status": "N:400",
		"RejectedSample.FirstSeen": ns(t0), "RejectedSample.LastAttempt": ns(t0.Add(time.Hour)), "RejectedSample.Attempts": "N:2"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("history item (-want +got):\n%s", d)
	}

	if err := s.ClearRejections(ctx, "news", []state.MemberID{id}); err != nil {
		t.Fatal(err)
	}
	complete(t, s, "news", t0)
	history = getItem(t, s.Config().HistoryTable, "news")
	got = map[string]string{}
	for _, attr := range []string{"RejectedCount", "RejectedSample", "LastError", "LastErrorAt"} {
		got[attr] = attrString(history[attr])
	}
	want = map[string]string{"RejectedCount": "N:0", "RejectedSample": "absent", "LastError": "absent", "LastErrorAt": "absent"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("history item after a clear and a completed run (-want +got):\n%s", d)
	}
}

// TestDynamoDBRejectedCalls: Connection stays one GetItem however long
// the log, RecordRejections costs an UpdateItem per member and a Query
// and an UpdateItem for the summary, ClearRejections a BatchWriteItem per
// 25 members and the same two.
func TestDynamoDBRejectedCalls(t *testing.T) {
	ctx := context.Background()
	s, _ := initDynamoDB(t)
	calls := dynamodb.CountCalls(s)
	var rs []state.Rejection
	var ids []state.MemberID
	for i := range 30 {
		id := state.MemberID{byte(i), 15: 1}
		ids = append(ids, id)
		rs = append(rs, state.Rejection{Member: id, Status: 422, Reason: fmt.Sprint("refusal ", i), LastAttempt: t0})
	}
	steps := []struct {
		name string
		do   func() error
		want map[string]int
	}{
		{"record 30", func() error { return s.RecordRejections(ctx, "news", rs) }, map[string]int{"UpdateItem": 31, "Query": 1}},
		{"read the connection", func() error { _, err := s.Connection(ctx, "news"); return err }, map[string]int{"GetItem": 1}},
		{"clear 30", func() error { return s.ClearRejections(ctx, "news", ids) },
			map[string]int{"BatchWriteItem": 2, "Query": 1, "UpdateItem": 1}},
		{"note an error", func() error { return s.NoteError(ctx, "news", "x", t0) }, map[string]int{"UpdateItem": 1}},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		got, _, _ := calls.Take()
		if d := cmp.Diff(step.want, got); d != "" {
			t.Errorf("%s: calls (-want +got):\n%s", step.name, d)
		}
	}
}

// TestDynamoDBRejectedBesideRuns: the trimming of old runs, which shares
// the runs table with the log, leaves the log alone.
func TestDynamoDBRejectedBesideRuns(t *testing.T) {
	ctx := context.Background()
	s, _ := initDynamoDB(t)
	dynamodb.SetRetention(s, 3, 3, 2)
	for i := range 8 {
		recordRejections(t, s, "news", state.Rejection{Member: state.MemberID{byte(i)}, Status: 422, LastAttempt: t0})
		complete(t, s, "news", t0.Add(time.Duration(i)*time.Hour))
	}
	runs, err := s.Runs(ctx, "news", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || !runs[0].WindowEnd.Equal(t0.Add(7*time.Hour)) {
		t.Errorf("Runs: %d runs; want the newest 3, ending at %v", len(runs), t0.Add(7*time.Hour))
	}
	log, err := s.RejectedLog(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Connection(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 8 || c.Rejected.Count != 8 {
		t.Errorf("after trims: %d entries in the log, Count %d; want 8", len(log), c.Rejected.Count)
	}
}
