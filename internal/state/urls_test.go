package state_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/chimport/chimport/internal/state"
	_ "github.com/chimport/chimport/internal/state/dynamodb"
	_ "github.com/chimport/chimport/internal/state/sqlite"
	"github.com/google/go-cmp/cmp"
)

// The stores cmd/chimport links, and the forms their errors list, as
// `chimport` printed them before the stores had packages of their own.
const wantForms = "sqlite://FILE (relative to the current directory), sqlite:///ABSOLUTE/FILE " +
	"or dynamodb://?region=R&history_table=T&failures_table=U&runs_table=V (every parameter optional)"

func TestRegisteredSchemes(t *testing.T) {
	if d := cmp.Diff([]string{"dynamodb", "sqlite"}, state.Schemes()); d != "" {
		t.Errorf("Schemes (-want +got):\n%s", d)
	}
}

// TestValidateURL: every URL form of the linked stores, in the registry's
// hands. Bad ones are refused by ValidateURL, Open and Init alike, with
// ErrBadURL and the message the store had before the registry.
func TestValidateURL(t *testing.T) {
	tests := []struct {
		url     string
		wantErr string // substring; the error must wrap ErrBadURL
	}{
		{url: "sqlite://chimport.db"},
		{url: "sqlite:///var/lib/chimport/state.db"},
		{url: "SQLite://x.db"},
		{url: "dynamodb://"},
		{url: "dynamodb:///"},
		{url: "dynamodb://?"},
		{url: "DynamoDB://?region=eu-west-1"},
		{url: "dynamodb://?history_table=his&failures_table=f.1&runs_table=r_1&region=us-gov-west-1"},
		{url: "dynamodb://?runs_table=prod-runs"},

		{url: "", wantErr: "no scheme"},
		{url: "sqlite://", wantErr: "no file path"},
		{url: "sqlite://x.db?mode=ro", wantErr: "query parameters are not supported for sqlite"},
		{url: "chimport.db", wantErr: "no scheme; want sqlite://"},
		{url: "sqlite:chimport.db", wantErr: "no scheme; want sqlite://"},
		{url: "postgres://db", wantErr: `unsupported scheme "postgres"`},
		{url: "postgres://x", wantErr: `unsupported scheme "postgres"`},
		{url: "dynamodb://mailchimp-list-import-history", wantErr: "settings go in query parameters"},
		{url: "dynamodb://?table=x", wantErr: `unknown parameter "table"`},
		{url: "dynamodb://?history_table=x", wantErr: `history table name "x"`},
		{url: "dynamodb://?region=", wantErr: `"region" is empty`},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := state.ValidateURL(tt.url)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			_, openErr := state.Open(ctx, tt.url)
			_, initErr := state.Init(ctx, tt.url)
			for call, err := range map[string]error{"ValidateURL": err, "Open": openErr, "Init": initErr} {
				if !errors.Is(err, state.ErrBadURL) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s: %v; want ErrBadURL mentioning %q", call, err, tt.wantErr)
				}
				if !strings.HasSuffix(err.Error(), "; want "+wantForms) {
					t.Errorf("%s: %v; want it to end with every form", call, err)
				}
			}
		})
	}
}

// TestStateLinksNoStore: the interface package, which the engine imports
// for its types, links neither SQLite nor the AWS SDK, nor does the memory
// store the engine's unit tests use.
func TestStateLinksNoStore(t *testing.T) {
	for _, pkg := range []string{".", "./memory", "./storetest"} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.Contains(dep, "sqlite") || strings.Contains(dep, "github.com/aws/") {
				t.Errorf("%s links %s", pkg, dep)
			}
		}
	}
}
