package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const tokenSecret = "oauth-token-9f8e7d6c"

func TestAccessToken(t *testing.T) {
	conn := func(mc string) string {
		return "connections:\n  - name: c\n    mailchimp: {" + mc + "}\n    target: {url: \"https://t.example.com\"}\n"
	}
	tests := []struct {
		name, yaml           string
		baseURL, metadataURL string
	}{
		{"token and dc", conn("access_token: \"${TOKEN}\", dc: us19, list_id: x"), "https://us19.api.mailchimp.com/3.0", DefaultMetadataURL},
		// The client looks the data center up at run time.
		{"token alone", conn("access_token: \"${TOKEN}\", list_id: x"), "", DefaultMetadataURL},
		{"base_url wins", conn("access_token: \"${TOKEN}\", dc: us19, list_id: x, base_url: \"http://127.0.0.1:9/3.0/\""), "http://127.0.0.1:9/3.0", DefaultMetadataURL},
		{"metadata_url", conn("access_token: \"${TOKEN}\", list_id: x, metadata_url: \"http://127.0.0.1:9/oauth2/metadata\""), "", "http://127.0.0.1:9/oauth2/metadata"},
		{"key as today", conn("api_key: k-us6, list_id: x"), "https://us6.api.mailchimp.com/3.0", DefaultMetadataURL},
		// Both in defaults: the connection declines one.
		{"declined from defaults", "defaults:\n  mailchimp: {api_key: k-us6, access_token: \"${TOKEN}\"}\n" + conn("api_key: ~, dc: us2, list_id: x"), "https://us2.api.mailchimp.com/3.0", DefaultMetadataURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), "t.yaml", env(map[string]string{"TOKEN": tokenSecret}))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			m := cfg.Connections[0].Mailchimp
			if m.BaseURL != tt.baseURL || m.MetadataURL != tt.metadataURL {
				t.Errorf("base_url %q, metadata_url %q; want %q, %q", m.BaseURL, m.MetadataURL, tt.baseURL, tt.metadataURL)
			}
			if m.APIKey == "" && m.AccessToken.Reveal() != tokenSecret {
				t.Errorf("access token = %q", m.AccessToken.Reveal())
			}
		})
	}
}

func TestMailchimpProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "both, neither, spaces",
			yaml: `connections:
  - name: both
    mailchimp: {api_key: "${TOKEN}-us6", access_token: "${TOKEN}", list_id: x}
    target: {url: "https://t.example.com"}
  - name: neither
    mailchimp: {list_id: x}
    target: {url: "https://t.example.com"}
  - name: spaces
    mailchimp: {access_token: "${TOKEN} x", list_id: x}
    target: {url: "https://t.example.com"}
`,
			want: []string{
				"connections[0].mailchimp.access_token: must not be set with api_key: use one of the two (write access_token: ~ or api_key: ~ in the connection to decline one from defaults) (line 3)",
				"connections[1].mailchimp.api_key: required (or access_token, for an account connected through OAuth)",
				"connections[2].mailchimp.access_token: must not contain spaces or line breaks (line 9)",
			},
		},
		{
			name: "both through defaults",
			yaml: "defaults:\n  mailchimp: {access_token: \"${TOKEN}\"}\nconnections:\n  - name: a\n" + valid,
			want: []string{"connections[0].mailchimp.access_token: must not be set with api_key: use one of the two (write access_token: ~ or api_key: ~ in the connection to decline one from defaults) (line 2, in defaults)"},
		},
		{
			name: "dc",
			yaml: `connections:
  - name: key
    mailchimp: {api_key: k-us6, dc: us6, list_id: x}
    target: {url: "https://t.example.com"}
  - name: shape
    mailchimp: {access_token: "${TOKEN}", dc: "6us", list_id: x}
    target: {url: "https://t.example.com"}
`,
			want: []string{
				"connections[0].mailchimp.dc: is only for an access_token: an API key's data center is its suffix after the last -; remove dc (line 3)",
				`connections[1].mailchimp.dc: must be a data center, letters then digits such as us6, got "6us" (line 6)`,
			},
		},
		{
			name: "metadata_url",
			yaml: `connections:
  - name: a
    mailchimp: {access_token: "${TOKEN}", list_id: x, metadata_url: "login.mailchimp.com/oauth2/metadata"}
    target: {url: "https://t.example.com"}
  - name: b
    mailchimp: {access_token: "${TOKEN}", list_id: x, metadata_url: "https://u:${TOKEN}@proxy.example.com/m"}
    target: {url: "https://t.example.com"}
`,
			want: []string{
				"connections[0].mailchimp.metadata_url: must be an absolute http or https URL (it has no scheme) (line 3)",
				"connections[1].mailchimp.metadata_url: must not hold a user name or password (line 6)",
			},
		},
		{
			name: "list id sequences",
			yaml: `connections:
  - name: empty
    mailchimp: {api_key: k-us6, list_id: []}
    target: {url: "https://t.example.com"}
  - name: bad
    mailchimp:
      api_key: k-us6
      list_id:
        - a1
        - "*"
        - a1
        - "a/b"
        - {x: y}
        - ~
    target: {url: "https://t.example.com"}
`,
			want: []string{
				`connections[0].mailchimp.list_id: must list at least one audience id, e.g. [a1b2c3d4e5, f6a7b8c9d0], or be "*" for every audience of the account (line 3)`,
				`connections[1].mailchimp.list_id[1]: "*" stands for every audience of the account and cannot be one of a list: write list_id: "*" alone, or list the ids (line 10)`,
				`connections[1].mailchimp.list_id[2]: repeats list_id[0] "a1": list each audience once (line 11)`,
				"connections[1].mailchimp.list_id[3]: must use only letters, digits, _ and - (line 12)",
				"connections[1].mailchimp.list_id[4]: must be an audience id, got a mapping (line 13)",
				"connections[1].mailchimp.list_id[5]: required (line 14)",
			},
		},
		{
			name: "list id length",
			yaml: "connections:\n  - name: a\n    mailchimp: {api_key: k-us6, list_id: " + strings.Repeat("a", 65) + "}\n    target: {url: \"https://t.example.com\"}\n",
			want: []string{"connections[0].mailchimp.list_id: must be at most 64 characters (line 3)"},
		},
		{
			name: "a list id from an unset variable",
			yaml: "connections:\n  - name: a\n    mailchimp: {api_key: k-us6, list_id: [a1, \"${NOPE}\"]}\n    target: {url: \"https://t.example.com\"}\n",
			want: []string{"connections[0].mailchimp.list_id[1]: environment variable NOPE is not set (line 3)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "test.yaml", env(map[string]string{"TOKEN": tokenSecret}))
			if diff := cmp.Diff(tt.want, problemStrings(t, err)); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), tokenSecret) {
				t.Errorf("the access token is in the error: %v", err)
			}
		})
	}
}

// A list_id sequence from defaults expands for each connection that does
// not write its own, and ids may come from the environment.
func TestListIDSequenceFromDefaults(t *testing.T) {
	yaml := `defaults:
  mailchimp: {list_id: [a1, "${L2}"]}
connections:
  - name: x
    mailchimp: {api_key: k-us6}
    target: {url: "https://t.example.com"}
  - name: y
    mailchimp: {api_key: k-us6, list_id: y1}
    target: {url: "https://t.example.com"}
`
	cfg, err := Parse([]byte(yaml), "d.yaml", env(map[string]string{"L2": "a2"}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cfg.Connections {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"x.a1", "x.a2", "y"}, names); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// An access token is printed nowhere, as a key is not.
func TestAccessTokenNeverPrinted(t *testing.T) {
	yaml := "connections:\n  - name: c\n    mailchimp: {access_token: \"${TOKEN}\", list_id: [a1, a2]}\n    target: {url: \"https://t.example.com\"}\n"
	cfg, err := Parse([]byte(yaml), "t.yaml", env(map[string]string{"TOKEN": tokenSecret}))
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg.Connections), fmt.Sprint(cfg.Warnings())} {
		if strings.Contains(out, tokenSecret) {
			t.Errorf("the token is printed: %s", out)
		}
	}
	j, err := json.Marshal(cfg)
	if err != nil || strings.Contains(string(j), tokenSecret) {
		t.Errorf("json: %v %s", err, j)
	}
}
