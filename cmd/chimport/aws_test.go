package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/chimport/chimport/internal/awstest"
)

// dynamoConfig is a config for the fixture's list with DynamoDB state in
// tables of its own.
func (f *fixture) dynamoConfig(t *testing.T, prefix, extra string) string {
	t.Helper()
	return writeFile(t, "chimport.yaml", fmt.Sprintf(`state: dynamodb://?history_table=%[1]s-history&failures_table=%[1]s-failures&runs_table=%[1]s-runs
%[2]s
connections:
  - name: a1b2c3d4e5
    mailchimp:
      api_key: ${MAILCHIMP_API_KEY}
      list_id: a1b2c3d4e5
      base_url: %[3]s
      settle: 0s
    target:
      url: %[4]s
      headers:
        Authorization: ${TARGET_API_KEY}
`, prefix, extra, f.baseURL, f.targetURL))
}

func TestInitAndRunWithDynamoDB(t *testing.T) {
	awstest.Env(t, map[string]string{"DYNAMODB": awstest.DynamoDB(t)})
	f := newFixture(t, 4000)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	cfg := f.dynamoConfig(t, "initrun", "")
	ctx := context.Background()

	r := runCLI(t, ctx, vars, "run", "--config", cfg)
	if r.code != exitUsage || !strings.Contains(r.stderr, `run "chimport init"`) {
		t.Fatalf("run before init: exit %d, stderr %q; want 2 and a pointer to chimport init", r.code, r.stderr)
	}
	r = runCLI(t, ctx, vars, "init", "--config", cfg)
	if r.code != exitOK || strings.Count(r.stdout, "created  DynamoDB table") != 3 {
		t.Fatalf("init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, ctx, vars, "init", "--config", cfg)
	if r.code != exitOK || strings.Count(r.stdout, "exists   DynamoDB table") != 3 {
		t.Fatalf("second init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, ctx, vars, "run", "--config", cfg)
	if r.code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got, want := f.target.Len(), len(f.sim.Members("a1b2c3d4e5")); got != want {
		t.Errorf("target holds %d records, want %d", got, want)
	}
	f.sim.ResetStats()
	f.target.ResetStats()
	if r = runCLI(t, ctx, vars, "run", "--config", cfg); r.code != exitOK {
		t.Fatalf("second run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := f.sim.Stats().Requests; got > 4 {
		t.Errorf("no-change run made %d Mailchimp requests, want at most 4 (the window and a count, for each of the two views)", got)
	}
	if got := f.target.Stats().Requests; got != 0 {
		t.Errorf("no-change run made %d target requests, want 0", got)
	}

	// The state is where an operator looks for it: the history table, keyed
	// by the connection name, with the watermark in LastImportTime.
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	item, err := dynamodb.NewFromConfig(awsCfg).GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String("initrun-history"),
		Key:       map[string]dbtypes.AttributeValue{"ListId": &dbtypes.AttributeValueMemberS{Value: "a1b2c3d4e5"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	last, ok := item.Item["LastImportTime"].(*dbtypes.AttributeValueMemberS)
	if !ok {
		t.Fatalf("history item has no LastImportTime: %v", item.Item)
	}
	if ts, err := time.Parse(time.RFC3339Nano, last.Value); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("LastImportTime = %q (%v), want a watermark from just now", last.Value, err)
	}
	r = runCLI(t, ctx, vars, "status", "--config", cfg, "--json")
	if r.code != exitOK || !strings.Contains(r.stdout, `"lag_seconds": `) || strings.Contains(r.stdout, `"lag_seconds": null`) {
		t.Errorf("status: exit %d\n%s", r.code, r.stdout)
	}
}

func TestWrongKeyAlertsOnceThroughSNS(t *testing.T) {
	topicARN, receive := awstest.TopicWithQueue(t, "chimport-alerts")
	awstest.Env(t, map[string]string{"DYNAMODB": awstest.DynamoDB(t), "SNS": awstest.SNS(t), "SQS": awstest.SNS(t)})
	f := newFixture(t, 20)
	const wrongKey = "0badc0de0badc0de0badc0de0badc0de-us6"
	vars := map[string]string{"MAILCHIMP_API_KEY": wrongKey, "TARGET_API_KEY": targetAuth}
	cfg := f.dynamoConfig(t, "alerting", "alerts:\n  sns_topic_arn: "+topicARN)
	ctx := context.Background()
	if r := runCLI(t, ctx, vars, "init", "--config", cfg); r.code != exitOK {
		t.Fatalf("init: exit %d\n%s", r.code, r.stderr)
	}

	r := runCLI(t, ctx, vars, "run", "--config", cfg)
	if r.code != exitFailed {
		t.Fatalf("run with a wrong key: exit %d, want %d\n%s", r.code, exitFailed, r.stdout)
	}
	var got []awstest.Notification
	for deadline := time.Now().Add(20 * time.Second); len(got) == 0 && time.Now().Before(deadline); {
		got = append(got, receive(1)...)
	}
	got = append(got, receive(1)...) // and nothing after it
	if len(got) != 1 {
		t.Fatalf("got %d SNS messages, want exactly 1: %+v", len(got), got)
	}
	msg := got[0].Subject + "\n" + got[0].Message
	for _, want := range []string{"a1b2c3d4e5", "401", "mailchimp.api_key"} {
		if !strings.Contains(msg, want) {
			t.Errorf("alert lacks %q:\n%s", want, msg)
		}
	}
	for _, secret := range []string{wrongKey, "0badc0de0badc0de", targetAuth} {
		if strings.Contains(msg+r.stdout+r.stderr, secret) {
			t.Errorf("a secret (%q) leaked into the alert or the output", secret)
		}
	}
}

func TestConfigFromS3BehavesLikeTheFile(t *testing.T) {
	endpoint := awstest.S3(t)
	awstest.Env(t, map[string]string{"S3": endpoint})
	f := newFixture(t, 30)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth,
		"AWS_ENDPOINT_URL_S3": endpoint}
	local := f.config(t, "a1b2c3d4e5", "nosuchlist")
	body, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("chimport-config")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("chimport-config"), Key: aws.String("prod/chimport.yaml"), Body: strings.NewReader(string(body))}); err != nil {
		t.Fatal(err)
	}

	fromFile := runCLI(t, ctx, vars, "check", "--config", local)
	fromS3 := runCLI(t, ctx, vars, "check", "--config", "s3://chimport-config/prod/chimport.yaml")
	vars["CHIMPORT_CONFIG"] = "s3://chimport-config/prod/chimport.yaml"
	fromEnv := runCLI(t, ctx, vars, "check")
	if fromFile.code != exitFailed || fromFile.stdout == "" {
		t.Fatalf("check from the file: exit %d\n%s", fromFile.code, fromFile.stdout)
	}
	for name, r := range map[string]result{"--config s3://": fromS3, "CHIMPORT_CONFIG=s3://": fromEnv} {
		if r.code != fromFile.code || r.stdout != fromFile.stdout {
			t.Errorf("%s: exit %d, stdout\n%s\nwant exit %d and the file's output\n%s", name, r.code, r.stdout, fromFile.code, fromFile.stdout)
		}
	}

	missing := runCLI(t, ctx, vars, "check", "--config", "s3://chimport-config/prod/nope.yaml")
	if missing.code != exitUsage || !strings.Contains(missing.stderr, "s3://chimport-config/prod/nope.yaml") {
		t.Errorf("missing S3 object: exit %d, stderr %q; want 2 naming the object", missing.code, missing.stderr)
	}
}
