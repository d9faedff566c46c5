package dynamodb

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/state"
)

// TestParseURL: what a dynamodb:// URL sets, and how a bad one is
// refused: through the registry, as Open, Init and ValidateURL see it.
func TestParseURL(t *testing.T) {
	defaults := Config{HistoryTable: DefaultHistoryTable, FailuresTable: DefaultFailuresTable, RunsTable: DefaultRunsTable}
	with := func(edit func(*Config)) Config {
		c := defaults
		edit(&c)
		return c
	}
	parse := func(rawURL string) (Config, error) {
		if err := state.ValidateURL(rawURL); err != nil {
			return Config{}, err
		}
		_, loc, _ := strings.Cut(rawURL, "://")
		return parseQuery(loc)
	}
	tests := []struct {
		url     string
		want    Config
		wantErr string // substring; the error must wrap ErrBadURL
	}{
		{url: "dynamodb://", want: defaults},
		{url: "dynamodb:///", want: defaults},
		{url: "dynamodb://?", want: defaults},
		{url: "DynamoDB://?region=eu-west-1", want: with(func(c *Config) { c.Region = "eu-west-1" })},
		{url: "dynamodb://?history_table=his&failures_table=f.1&runs_table=r_1&region=us-gov-west-1",
			want: Config{Region: "us-gov-west-1", HistoryTable: "his", FailuresTable: "f.1", RunsTable: "r_1"}},
		{url: "dynamodb://?runs_table=prod-runs", want: with(func(c *Config) { c.RunsTable = "prod-runs" })},

		{url: "dynamodb://mailchimp-list-import-history", wantErr: "settings go in query parameters"},
		{url: "dynamodb://?table=x", wantErr: `unknown parameter "table"`},
		{url: "dynamodb://?Region=eu-west-1", wantErr: `unknown parameter "Region"`},
		{url: "dynamodb://?region=", wantErr: `"region" is empty`},
		{url: "dynamodb://?region=a&region=b", wantErr: `"region" given 2 times`},
		{url: "dynamodb://?region=eu west", wantErr: "not a region name"},
		{url: "dynamodb://?region=%zz", wantErr: "query"},
		{url: "dynamodb://?history_table=ab", wantErr: `history table name "ab"`},
		{url: "dynamodb://?runs_table=a/b/c", wantErr: `runs table name "a/b/c"`},
		{url: "dynamodb://?runs_table=mailchimp-failed-imports", wantErr: `failures and runs tables are both "mailchimp-failed-imports"`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := parse(tt.url)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error; got %+v", got)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, state.ErrBadURL) {
					t.Errorf("error %q: want one wrapping ErrBadURL and mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestParseLegacyTime(t *testing.T) {
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	tests := []struct {
		in   types.AttributeValue
		want time.Time // zero: an error
	}{
		{s("2024-05-01T10:00:00+00:00"), base},
		{s("2024-05-01T10:00:00Z"), base},
		{s("2024-05-01T10:00:00.123456789Z"), base.Add(123456789)},
		{s("2024-05-01T10:00:00.123456+00:00"), base.Add(123456 * time.Microsecond)},
		{s("2024-05-01T12:00:00+02:00"), base},
		{s("2024-05-01T05:30:00-0430"), base},
		{s("2024-05-01T10:00:00"), base},
		{s("2024-05-01T10:00:00.5"), base.Add(500 * time.Millisecond)},
		{s("2024-05-01 10:00:00+00:00"), base},
		{s("2024-05-01 10:00:00.000001"), base.Add(time.Microsecond)},
		{s(" 2024-05-01T10:00:00Z\n"), base},
		{s("2024-05-01"), base.Truncate(24 * time.Hour)},
		{s("1714557600"), base},
		{n("1714557600"), base},
		{n("1714557600.000000001"), base.Add(1)},
		{n("1714557600.5"), base.Add(500 * time.Millisecond)},
		{n("1.7145576E+9"), base},
		{s("yesterday"), time.Time{}},
		{s(""), time.Time{}},
		{n("1e30"), time.Time{}},
		{&types.AttributeValueMemberBOOL{Value: true}, time.Time{}},
	}
	for _, tt := range tests {
		got, err := parseLegacyTime(tt.in)
		if tt.want.IsZero() {
			if err == nil {
				t.Errorf("%#v: got %s, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("%#v: got %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestISOMirror(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*60*60)
	for in, want := range map[time.Time]string{
		time.Date(2024, 5, 1, 12, 0, 0, 0, zone):             "2024-05-01T10:00:00.000000+00:00",
		time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.UTC): "2024-05-01T10:00:00.123456+00:00",
	} {
		if got := isoMirror(in); got != want {
			t.Errorf("isoMirror(%s) = %s, want %s", in, got, want)
		}
		back, err := parseLegacyTime(str(isoMirror(in)))
		if err != nil || back.After(in) || in.Sub(back) >= time.Microsecond {
			t.Errorf("%s read back as %s, %v", in, back, err)
		}
	}
}

// TestRunIDOrder: run ids sort as their times do, before 1970 too, and by
// recording order at the same instant.
func TestRunIDOrder(t *testing.T) {
	s := &Store{handle: 0xfeed}
	times := []time.Time{
		{},
		time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC),
		time.Unix(0, -1),
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC),
		time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC),
		time.Date(2024, 5, 1, 10, 0, 0, 1, time.UTC),
	}
	var ids []string
	for _, at := range times {
		id, err := s.runID(state.Run{Finished: at})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if !slices.IsSorted(ids) {
		t.Errorf("ids out of order:\n%s", strings.Join(ids, "\n"))
	}
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Error("duplicate ids")
	}
	if _, err := s.runID(state.Run{Started: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("a time past 2262 got an id")
	}
}
