package dynamodb_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/chimport/chimport/internal/state"
	"github.com/google/go-cmp/cmp"
)

// TestDynamoDBLegacyWatermark is the hand-over from the original importer:
// its item for a list becomes the starting watermark of the connection named
// after that list, whatever form its LastImportTime took.
func TestDynamoDBLegacyWatermark(t *testing.T) {
	s, _ := initDynamoDB(t)
	ctx := context.Background()
	legacy := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		listID string
		value  types.AttributeValue
		want   time.Time
	}{
		{"a1b2c3d4e5", &types.AttributeValueMemberS{Value: "2024-05-01T10:00:00+00:00"}, legacy},
		{"b1b2c3d4e5", &types.AttributeValueMemberN{Value: "1714557600"}, legacy},
		{"c1b2c3d4e5", &types.AttributeValueMemberN{Value: "1714557600.25"}, legacy.Add(250 * time.Millisecond)},
		{"d1b2c3d4e5", &types.AttributeValueMemberS{Value: "2024-05-01T12:00:00.5+02:00"}, legacy.Add(500 * time.Millisecond)},
		{"e1b2c3d4e5", &types.AttributeValueMemberS{Value: "2024-05-01T10:00:00.123456"}, legacy.Add(123456 * time.Microsecond)},
	}
	for _, tt := range tests {
		t.Run(tt.listID, func(t *testing.T) {
			putItem(t, s.Config().HistoryTable, map[string]types.AttributeValue{
				"ListId": &types.AttributeValueMemberS{Value: tt.listID}, "LastImportTime": tt.value})
			c, err := s.Connection(ctx, tt.listID)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(state.ConnectionState{Connection: tt.listID, Watermark: tt.want}, c); d != "" {
				t.Errorf("Connection (-want +got):\n%s", d)
			}

			end := tt.want.Add(90 * time.Minute)
			complete(t, s, tt.listID, end)
			c, err = s.Connection(ctx, tt.listID)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Watermark.Equal(end) {
				t.Errorf("watermark after a completed run = %s, want %s", c.Watermark, end)
			}
			item := getItem(t, s.Config().HistoryTable, tt.listID)
			if got, want := attrString(item["Watermark"]), "N:"+strconv.FormatInt(end.UnixNano(), 10); got != want {
				t.Errorf("Watermark = %s, want %s", got, want)
			}
			if got, want := attrString(item["LastImportTime"]), "S:"+end.Format("2006-01-02T15:04:05.000000-07:00"); got != want {
				t.Errorf("LastImportTime = %s, want %s", got, want)
			}
		})
	}

	t.Run("unreadable", func(t *testing.T) {
		putItem(t, s.Config().HistoryTable, map[string]types.AttributeValue{
			"ListId": &types.AttributeValueMemberS{Value: "f1b2c3d4e5"}, "LastImportTime": &types.AttributeValueMemberS{Value: "yesterday"}})
		_, err := s.Connection(ctx, "f1b2c3d4e5")
		if err == nil || !strings.Contains(err.Error(), `"yesterday"`) || !strings.Contains(err.Error(), s.Config().HistoryTable) {
			t.Fatalf("got %v, want an error naming the table and the value", err)
		}
		t.Log(err)
	})
}

// TestDynamoDBLegacyFailures: the original importer's failures (range key
// offset = the page offset, no window) show as pending and are resolved by
// the next completed run.
func TestDynamoDBLegacyFailures(t *testing.T) {
	s, _ := initDynamoDB(t)
	ctx := context.Background()
	putItem(t, s.Config().FailuresTable, map[string]types.AttributeValue{
		"ListId": &types.AttributeValueMemberS{Value: "a1b2c3d4e5"}, "offset": &types.AttributeValueMemberN{Value: "2000"}})
	got, err := s.Failures(ctx, "a1b2c3d4e5")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]state.Failure{{Connection: "a1b2c3d4e5", Offset: 2000}}, got); d != "" {
		t.Errorf("Failures (-want +got):\n%s", d)
	}
	complete(t, s, "a1b2c3d4e5", t0)
	if got, err = s.Failures(ctx, "a1b2c3d4e5"); err != nil || len(got) != 0 {
		t.Errorf("after a completed run: %v, %v; want none", got, err)
	}
}
