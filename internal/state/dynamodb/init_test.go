package dynamodb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chimport/chimport/internal/state"
	"github.com/google/go-cmp/cmp"
)

func TestInitDynamoDB(t *testing.T) {
	dynamoEnv(t)
	ctx := context.Background()
	url := dynamoURL(t)
	p := strings.TrimSuffix(strings.TrimPrefix(strings.Split(url, "&")[0], "dynamodb://?history_table="), "-history")
	all := []string{"DynamoDB table " + p + "-history", "DynamoDB table " + p + "-failures", "DynamoDB table " + p + "-runs"}

	report, err := state.Init(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(state.InitReport{Created: all}, report); d != "" {
		t.Errorf("first Init (-want +got):\n%s", d)
	}
	report, err = state.Init(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(state.InitReport{Existing: all}, report); d != "" {
		t.Errorf("second Init (-want +got):\n%s", d)
	}
	s := openDynamoDB(t, url)
	complete(t, s, "news", t0)
}
