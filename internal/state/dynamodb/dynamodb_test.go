package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/chimport/chimport/internal/awstest"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/dynamodb"
	"github.com/chimport/chimport/internal/state/storetest"
	"github.com/google/go-cmp/cmp"
)

// dynamoEnv points the AWS SDK at dynalite, as AWS_ENDPOINT_URL_DYNAMODB
// would point it anywhere.
func dynamoEnv(t *testing.T) {
	t.Helper()
	awstest.Env(t, map[string]string{"DYNAMODB": awstest.DynamoDB(t)})
}

var tableSeq atomic.Int64

// dynamoURL names three tables no other test uses.
func dynamoURL(t *testing.T) string {
	t.Helper()
	p := fmt.Sprintf("t%d", tableSeq.Add(1))
	return "dynamodb://?history_table=" + p + "-history&failures_table=" + p + "-failures&runs_table=" + p + "-runs"
}

// initDynamoDB creates fresh tables and opens a store on them.
func initDynamoDB(t *testing.T) (*dynamodb.Store, string) {
	t.Helper()
	dynamoEnv(t)
	url := dynamoURL(t)
	if _, err := state.Init(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	return openDynamoDB(t, url), url
}

func openDynamoDB(t *testing.T, url string) *dynamodb.Store {
	t.Helper()
	s, err := state.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s.(*dynamodb.Store)
}

// rawClient is a plain SDK client, to look at the tables the way the AWS
// console or the original importer would.
func rawClient(t *testing.T) *ddb.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ddb.NewFromConfig(cfg)
}

func getItem(t *testing.T, table, listID string) map[string]types.AttributeValue {
	t.Helper()
	out, err := rawClient(t).GetItem(context.Background(), &ddb.GetItemInput{
		TableName: &table, Key: map[string]types.AttributeValue{"ListId": &types.AttributeValueMemberS{Value: listID}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func putItem(t *testing.T, table string, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := rawClient(t).PutItem(context.Background(), &ddb.PutItemInput{TableName: &table, Item: item}); err != nil {
		t.Fatal(err)
	}
}

func attrString(av types.AttributeValue) string {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return "S:" + v.Value
	case *types.AttributeValueMemberN:
		return "N:" + v.Value
	case nil:
		return "absent"
	default:
		return fmt.Sprintf("%T", av)
	}
}

var t0 = time.Date(2024, 3, 10, 9, 30, 15, 123456789, time.UTC)

func complete(t *testing.T, s state.Store, name string, end time.Time) {
	t.Helper()
	err := s.CompleteRun(context.Background(), state.Run{Connection: name, Result: state.ResultOK,
		WindowEnd: end, Finished: end, Delivered: 1})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDynamoDBStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (state.Store, func() state.Store) {
		s, url := initDynamoDB(t)
		return s, func() state.Store { return openDynamoDB(t, url) }
	})
}

// TestDynamoDBStateVisibleInHistoryTable reads the history item as anyone
// with the AWS console would: the watermark, exact, and its readable mirror.
func TestDynamoDBStateVisibleInHistoryTable(t *testing.T) {
	s, _ := initDynamoDB(t)
	end := t0.Add(time.Hour)
	if err := s.StartRun(context.Background(), "newsletter", t0); err != nil {
		t.Fatal(err)
	}
	complete(t, s, "newsletter", end)

	item := getItem(t, s.Config().HistoryTable, "newsletter")
	got := map[string]string{}
	for _, attr := range []string{"Watermark", "LastImportTime", "LastSuccess", "FirstAttempt", "TotalDelivered", "Checkpoint", "LastError"} {
		got[attr] = attrString(item[attr])
	}
	want := map[string]string{
		"Watermark":      "N:" + strconv.FormatInt(end.UnixNano(), 10),
		"LastImportTime": "S:2024-03-10T10:30:15.123456+00:00",
		"LastSuccess":    "N:" + strconv.FormatInt(end.UnixNano(), 10),
		"FirstAttempt":   "N:" + strconv.FormatInt(t0.UnixNano(), 10),
		"TotalDelivered": "N:1",
		"Checkpoint":     "absent",
		"LastError":      "absent",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("history item (-want +got):\n%s", d)
	}
}

// TestDynamoDBLeaseAndAlertsInHistoryItem: the lease and the open alerts
// are attributes of the connection's history item, readable in the
// console; a release drops the owner and expiry and keeps the token.
func TestDynamoDBLeaseAndAlertsInHistoryItem(t *testing.T) {
	ctx := context.Background()
	s, _ := initDynamoDB(t)
	l, err := s.ClaimLease(ctx, "newsletter", "worker-1", t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAlert(ctx, "newsletter", "lag", true, t0); err != nil {
		t.Fatal(err)
	}
	ns := func(at time.Time) string { return "N:" + strconv.FormatInt(at.UnixNano(), 10) }
	look := func() map[string]string {
		item := getItem(t, s.Config().HistoryTable, "newsletter")
		got := map[string]string{}
		for _, attr := range []string{"LeaseOwner", "LeaseToken", "LeaseExpires"} {
			got[attr] = attrString(item[attr])
		}
		if m, ok := item["Alerts"].(*types.AttributeValueMemberM); ok {
			for kind, av := range m.Value {
				got["Alerts."+kind] = attrString(av)
			}
		} else {
			got["Alerts"] = attrString(item["Alerts"])
		}
		return got
	}
	want := map[string]string{"LeaseOwner": "S:worker-1", "LeaseToken": "N:1",
		"LeaseExpires": ns(t0.Add(time.Minute)), "Alerts.lag": ns(t0)}
	if d := cmp.Diff(want, look()); d != "" {
		t.Errorf("history item (-want +got):\n%s", d)
	}

	if err := s.ReleaseLease(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAlert(ctx, "newsletter", "lag", false, time.Time{}); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"LeaseOwner": "absent", "LeaseToken": "N:1", "LeaseExpires": "absent"}
	if d := cmp.Diff(want, look()); d != "" {
		t.Errorf("history item after release and recovery (-want +got):\n%s", d)
	}
}

func TestDynamoDBMissingTables(t *testing.T) {
	dynamoEnv(t)
	ctx := context.Background()
	_, err := state.Open(ctx, "dynamodb://")
	want := `state: table "mailchimp-list-import-history" does not exist (region us-east-1): run "chimport init"`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if !errors.Is(err, dynamodb.ErrNotInitialized) {
		t.Errorf("%v does not wrap ErrNotInitialized", err)
	}

	// Dropped after the store was opened: every method says the same.
	s, url := initDynamoDB(t)
	if _, err := rawClient(t).DeleteTable(ctx, &ddb.DeleteTableInput{TableName: aws.String(s.Config().RunsTable)}); err != nil {
		t.Fatal(err)
	}
	err = s.FailRun(ctx, state.Run{Connection: "news", Error: "x"})
	if !errors.Is(err, dynamodb.ErrNotInitialized) || !strings.Contains(err.Error(), s.Config().RunsTable) {
		t.Errorf("FailRun on a dropped table: got %v", err)
	}
	if _, err := state.Open(ctx, url); !errors.Is(err, dynamodb.ErrNotInitialized) {
		t.Errorf("Open with a dropped table: got %v", err)
	}
}

// TestDynamoDBWrongKeySchema: a table of the right name made for something
// else is refused, not written into.
func TestDynamoDBWrongKeySchema(t *testing.T) {
	dynamoEnv(t)
	ctx := context.Background()
	url := dynamoURL(t)
	table := strings.TrimPrefix(strings.Split(url, "&")[1], "failures_table=")
	_, err := rawClient(t).CreateTable(ctx, &ddb.CreateTableInput{
		TableName:            &table,
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("ListId"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("ListId"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`state: dynamodb: failures table %q has the keys ListId (hash, S); chimport needs ListId (hash, S), offset (range, N)`, table)
	if _, err := state.Init(ctx, url); err == nil || err.Error() != want {
		t.Errorf("Init: got %v, want %s", err, want)
	}
	// Init created the history table before it met the failures table.
	if _, err := state.Open(ctx, url); err == nil || err.Error() != want {
		t.Errorf("Open: got %v, want %s", err, want)
	}
}

func TestDynamoDBRetention(t *testing.T) {
	ctx := context.Background()
	s, _ := initDynamoDB(t)
	dynamodb.SetRetention(s, 3, 2, 2)
	for i := range 7 {
		end := t0.Add(time.Duration(i) * time.Hour)
		complete(t, s, "news", end)
		// Pending failures beyond the window of every completed run.
		if err := s.AddFailure(ctx, state.Failure{Connection: "news", WindowEnd: t0.Add(100 * time.Hour),
			Offset: i, Error: "x", At: end}); err != nil {
			t.Fatal(err)
		}
	}
	// Trims happen at every 2nd append: after the 6th, the newest 3 runs
	// and 2 failures are left, and the 7th of each comes on top.
	runs, err := s.Runs(ctx, "news", 10)
	if err != nil {
		t.Fatal(err)
	}
	var ends []time.Time
	for _, r := range runs {
		ends = append(ends, r.WindowEnd)
	}
	want := []time.Time{t0.Add(6 * time.Hour), t0.Add(5 * time.Hour), t0.Add(4 * time.Hour), t0.Add(3 * time.Hour)}
	if d := cmp.Diff(want, ends); d != "" {
		t.Errorf("kept runs (-want +got):\n%s", d)
	}
	failures, err := s.Failures(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int
	for _, f := range failures {
		offsets = append(offsets, f.Offset)
	}
	if d := cmp.Diff([]int{4, 5, 6}, offsets); d != "" {
		t.Errorf("kept failures (-want +got):\n%s", d)
	}
}

// TestDynamoDBFailureKeysCollide: failures recorded at the same instant
// all stay, in the order they were added.
func TestDynamoDBFailureKeysCollide(t *testing.T) {
	ctx := context.Background()
	s, _ := initDynamoDB(t)
	for i := range 3 {
		if err := s.AddFailure(ctx, state.Failure{Connection: "news", Offset: i * 1000, Error: "x", At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	failures, err := s.Failures(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int
	for _, f := range failures {
		offsets = append(offsets, f.Offset)
	}
	if d := cmp.Diff([]int{0, 1000, 2000}, offsets); d != "" {
		t.Errorf("failures (-want +got):\n%s", d)
	}
}

func TestDynamoDBOpenURL(t *testing.T) {
	dynamoEnv(t)
	ctx := context.Background()
	url := dynamoURL(t)
	if _, err := state.Init(ctx, url); err != nil {
		t.Fatal(err)
	}
	s := openDynamoDB(t, url+"&region=eu-west-1")
	p := strings.TrimSuffix(strings.TrimPrefix(strings.Split(url, "&")[0], "dynamodb://?history_table="), "-history")
	want := dynamodb.Config{Region: "eu-west-1", HistoryTable: p + "-history", FailuresTable: p + "-failures", RunsTable: p + "-runs"}
	if d := cmp.Diff(want, s.Config()); d != "" {
		t.Errorf("Config (-want +got):\n%s", d)
	}
	s = openDynamoDB(t, url)
	if got := s.Config().Region; got != awstest.Region {
		t.Errorf("region from the environment = %q, want %q", got, awstest.Region)
	}

	for _, bad := range []string{"dynamodb://?table=x", "dynamodb://eu-west-1", "dynamodb://?region="} {
		if _, err := state.Open(ctx, bad); !errors.Is(err, state.ErrBadURL) {
			t.Errorf("Open(%q) = %v, want ErrBadURL", bad, err)
		}
	}
}

func TestDynamoDBNoRegion(t *testing.T) {
	dynamoEnv(t)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	_, err := state.Open(context.Background(), "dynamodb://")
	if err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Fatalf("got %v, want advice to set AWS_REGION", err)
	}
}
