package config

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// env returns a lookupEnv over a fixed map, so tests never read the process
// environment.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

var testEnv = map[string]string{
	"MAILCHIMP_API_KEY": "0123456789abcdef-us6",
	"TARGET_API_KEY":    "tgt-secret-42",
	"SHOP_API_KEY":      "fedcba9876543210-us19",
	"BATCH_SIZE":        "250",
}

func dur(d time.Duration) Duration { return Duration(d) }

func mustLoad(t *testing.T, path string, vars map[string]string) *Config {
	t.Helper()
	cfg, err := Load(path, env(vars))
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return cfg
}

func TestLoadFull(t *testing.T) {
	got := mustLoad(t, "testdata/full.yaml", testEnv)
	want := &Config{
		State: "dynamodb://?region=eu-west-1",
		Connections: []Connection{
			{
				Name:  "newsletter",
				Every: dur(time.Hour), // from defaults
				Mailchimp: Mailchimp{
					APIKey:   "0123456789abcdef-us6", // from defaults
					ListID:   "a1b2c3d4e5",
					BaseURL:  "https://us6.api.mailchimp.com/3.0", // derived from the key
					Settle:   dur(2 * time.Minute),
					Statuses: []string{"subscribed", "archived"},
				},
				ReconcileEvery: dur(6 * time.Hour), // from defaults
				Target: Target{
					URL: "https://api.example.com/record",
					Headers: map[string]Secret{ // defaults' headers merged with the connection's
						"Authorization": "Bearer tgt-secret-42",
						"X-Source":      "chimport",
						"X-Tenant":      "acme",
					},
					BatchSize:   DefaultBatchSize,
					Timeout:     dur(10 * time.Second),
					MaxRejected: 20, // from defaults
					Deletes:     DeletesTombstone,
					// The defaults' tombstone merged with the connection's.
					Tombstone: Tombstone{"status": "gone", "active": false, "deleted_at": nil},
				},
				Mapping: Mapping{{Key: "id", Path: "id"}, {Key: "email", Path: "email_address"}},
			},
			{
				Name:           "shop_eu",
				Every:          dur(15 * time.Minute),
				ReconcileEvery: dur(90 * time.Minute),
				Mailchimp: Mailchimp{
					APIKey:  "fedcba9876543210-us19",
					ListID:  "f00ba7",
					BaseURL: "http://127.0.0.1:8080/3.0", // trailing slash dropped
					Settle:  0,
				},
				Target: Target{
					URL:         "http://localhost:9000/in?tag=${literal}",
					Headers:     map[string]Secret{"X-Source": "shop"},
					BatchSize:   250, // ${BATCH_SIZE}, read as a number
					Timeout:     dur(10 * time.Second),
					MaxRejected: 5,
					Deletes:     DeletesOff,
					Tombstone:   Tombstone{"status": "deleted", "active": false},
				},
				// Replaced whole: no "id" from the defaults' mapping.
				Mapping: Mapping{{Key: "email", Path: "email_address"}, {Key: "tags", Path: "tags"}},
			},
			{
				Name:           "crm",
				Every:          dur(time.Hour),
				ReconcileEvery: dur(6 * time.Hour),
				Mailchimp: Mailchimp{
					APIKey:  "0123456789abcdef-us6",
					ListID:  "c0ffee",
					BaseURL: "https://us6.api.mailchimp.com/3.0",
					Settle:  dur(2 * time.Minute),
				},
				Target: Target{
					URL:         "https://crm.example.com/contacts",
					Headers:     map[string]Secret{"Authorization": "Bearer tgt-secret-42", "X-Source": "chimport"},
					BatchSize:   DefaultBatchSize,
					Timeout:     dur(10 * time.Second),
					MaxRejected: 20,
					Deletes:     DeletesRequest,
					DeleteURL:   "https://crm.example.com/contacts/{id}?source=chimport",
					Tombstone:   Tombstone{"status": "deleted", "active": false},
				},
				Mapping: Mapping{{Key: "id", Path: "id"}, {Key: "email", Path: "email_address"}},
			},
		},
	}
	for i := range want.Connections {
		want.Connections[i].Mailchimp.MetadataURL = DefaultMetadataURL
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Connection{}, "Origin")); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadMinimalGetsAllDefaults(t *testing.T) {
	got := mustLoad(t, "testdata/minimal.yaml", nil)
	want := &Config{
		State: DefaultState,
		Connections: []Connection{{
			Name:           "newsletter",
			Every:          dur(90 * time.Minute),
			ReconcileEvery: dur(24 * time.Hour),
			Mailchimp: Mailchimp{
				APIKey:  "0123456789abcdef-us6",
				ListID:  "a1b2c3d4e5",
				BaseURL: "https://us6.api.mailchimp.com/3.0",
				Settle:  dur(60 * time.Second),

				MetadataURL: DefaultMetadataURL,
			},
			Target: Target{
				URL:         "https://api.example.com/record",
				BatchSize:   1000,
				Timeout:     dur(30 * time.Second),
				MaxRejected: 100,
				Deletes:     "tombstone",
				Tombstone:   Tombstone{"status": "deleted"},
			},
			Mapping: DefaultMapping(),
			Origin:  Origin{Field: "connections[0]", Line: 2},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadAnchorsAndMergeKeys(t *testing.T) {
	got := mustLoad(t, "testdata/anchors.yaml", nil)
	type summary struct {
		Name, ListID, URL string
		BatchSize         int
		Timeout           Duration
	}
	var sums []summary
	for _, c := range got.Connections {
		sums = append(sums, summary{c.Name, c.Mailchimp.ListID, c.Target.URL, c.Target.BatchSize, c.Target.Timeout})
	}
	want := []summary{
		{"a", "aaa", "https://api.example.com/record", 1000, dur(5 * time.Second)},
		{"b", "bbb", "https://api.example.com/record", 10, dur(5 * time.Second)},
		{"c", "aaa", "https://api.example.com/record", 1000, dur(5 * time.Second)},
	}
	if diff := cmp.Diff(want, sums); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadMissingFileNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path, nil)
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Load: got %T %v, want *Error", err, err)
	}
	if cerr.Source != path || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	want := "config " + path + ": 1 problem:\n  cannot read the file: no such file or directory"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
}

func TestExampleParses(t *testing.T) {
	cfg, err := Parse([]byte(Example()), "example", env(testEnv))
	if err != nil {
		t.Fatalf("Parse(Example()): %v", err)
	}
	// The example spells out every default, so it must equal the minimal
	// file's result apart from the values it sets itself.
	minimal := mustLoad(t, "testdata/minimal.yaml", nil)
	minimal.Connections[0].Mailchimp.APIKey = Secret(testEnv["MAILCHIMP_API_KEY"])
	minimal.Connections[0].Target.Headers = map[string]Secret{"Authorization": Secret(testEnv["TARGET_API_KEY"])}
	if diff := cmp.Diff(minimal, cfg, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(Connection{}, "Origin")); diff != "" {
		t.Errorf("example differs from the defaults (-defaults +example):\n%s", diff)
	}

	_, err = Parse([]byte(Example()), "example", nil)
	want := []string{
		"connections[0].mailchimp.api_key: environment variable MAILCHIMP_API_KEY is not set (line 38)",
		"connections[0].target.headers.Authorization: environment variable TARGET_API_KEY is not set (line 46)",
	}
	if diff := cmp.Diff(want, problemStrings(t, err)); diff != "" {
		t.Errorf("without env (-want +got):\n%s", diff)
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse([]byte("connections:\n  - name: Bad\n"), "chimport.yaml", nil)
	want := `config chimport.yaml: 4 problems:
  connections[0].name: must use only a-z, 0-9, _ and -, got "Bad" (line 2)
  connections[0].mailchimp.api_key: required (or access_token, for an account connected through OAuth)
  connections[0].mailchimp.list_id: required
  connections[0].target.url: required`
	if err == nil || err.Error() != want {
		t.Errorf("Error() =\n%v\nwant\n%s", err, want)
	}
	var cerr *Error
	if !errors.As(err, &cerr) || cerr.Problems[0].Line != 2 || cerr.Problems[1].Line != 0 {
		t.Errorf("problems carry wrong lines: %+v", cerr)
	}
}

// problemStrings returns each problem as "field: message", failing the test
// unless err is an *Error.
func problemStrings(t *testing.T, err error) []string {
	t.Helper()
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("got error %T %v, want *Error", err, err)
	}
	var out []string
	for _, p := range cerr.Problems {
		out = append(out, p.String())
	}
	return out
}
