package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const webhookSecret = "s3cr3t-webhook-0123456789" // 25 characters

func TestWebhooksSettings(t *testing.T) {
	on, off := true, false
	yaml := `webhooks:
  secret: ${CHIMPORT_WEBHOOK_SECRET}
  public_url: https://chimport.example.com/
defaults:
  webhooks: false
connections:
  - name: a
    webhooks: true               # overrides defaults
` + valid + `  - name: b                     # off from defaults
` + valid + `  - name: c
    webhooks: ~                  # declines defaults: unset, so on
` + valid
	cfg, err := Parse([]byte(yaml), "x", env(map[string]string{"CHIMPORT_WEBHOOK_SECRET": webhookSecret}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Webhooks.Secret.Reveal(); got != webhookSecret {
		t.Errorf("webhooks.secret = %q, want the variable's value", got)
	}
	if !cfg.Webhooks.Enabled() || cfg.Webhooks.PublicURL != "https://chimport.example.com/" {
		t.Errorf("webhooks = %+v, want enabled with the public URL as written", cfg.Webhooks)
	}
	type conn struct {
		Set *bool
		On  bool
	}
	var got []conn
	for _, c := range cfg.Connections {
		got = append(got, conn{c.Webhooks, c.WebhooksOn(cfg.Webhooks)})
	}
	want := []conn{{&on, true}, {&off, false}, {nil, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("connections' webhooks (-want +got):\n%s", diff)
	}

	// The secret prints as [redacted] however the config is printed.
	j, _ := json.Marshal(cfg)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg.Webhooks), string(j)} {
		if strings.Contains(out, webhookSecret) {
			t.Errorf("the config prints the webhook secret: %s", out)
		}
	}
}

func TestWebhooksOffWithoutASecret(t *testing.T) {
	for _, yaml := range []string{
		"connections:\n  - name: a\n" + valid,
		"webhooks: {}\nconnections:\n  - name: a\n" + valid,
		"webhooks:\n  secret: \"\"\nconnections:\n  - name: a\n    webhooks: false\n" + valid,
		// true cannot turn on what the secret leaves off, and is no error.
		"connections:\n  - name: a\n    webhooks: true\n" + valid,
	} {
		cfg, err := Parse([]byte(yaml), "x", nil)
		if err != nil {
			t.Errorf("%s: %v", yaml, err)
			continue
		}
		if cfg.Webhooks.Enabled() || cfg.Connections[0].WebhooksOn(cfg.Webhooks) {
			t.Errorf("%s: webhooks on without a secret", yaml)
		}
	}
}

func TestWebhooksProblems(t *testing.T) {
	const minLen = "webhooks.secret: must be at least 16 characters; a long random value, e.g. from openssl rand -hex 32"
	const noSecret = "webhooks.secret: required with webhooks.public_url: webhooks are on only when the secret is set " +
		"(at least 16 characters, e.g. from ${CHIMPORT_WEBHOOK_SECRET}); remove public_url to leave them off"
	const noURL = "webhooks.public_url: required with webhooks.secret: the base URL Mailchimp calls, reaching " +
		"`chimport serve --webhook-listen`, e.g. https://chimport.example.com"
	tests := []struct {
		name    string
		webhook string // the webhooks block's body, at lines 2 and 3
		conn    string // a connection setting, at line 6
		env     map[string]string
		want    []string
	}{
		{
			name:    "secret shorter than 16, from the environment",
			webhook: "  secret: ${S}\n  public_url: https://h.example.com\n",
			env:     map[string]string{"S": "short-secret-15"},
			want:    []string{minLen + " (line 2)"},
		},
		{
			name:    "secret shorter than 16, written in the file",
			webhook: "  secret: tiny-secret\n  public_url: https://h.example.com\n",
			want:    []string{minLen + " (line 2)"},
		},
		{
			name:    "16 characters counted as characters, not bytes",
			webhook: "  secret: ééééééééééééééé\n  public_url: https://h.example.com\n", // 15 characters, 30 bytes
			want:    []string{minLen + " (line 2)"},
		},
		{
			name:    "secret ending in a line break",
			webhook: "  secret: \"${S}\\n\"\n  public_url: https://h.example.com\n",
			env:     map[string]string{"S": webhookSecret},
			want:    []string{"webhooks.secret: must not start or end with spaces or line breaks (line 2)"},
		},
		{
			name:    "unset variable is reported once, not also as missing",
			webhook: "  secret: ${CHIMPORT_WEBHOOK_SECRET}\n  public_url: https://h.example.com\n",
			want:    []string{"webhooks.secret: environment variable CHIMPORT_WEBHOOK_SECRET is not set (line 2)"},
		},
		{
			name:    "public_url without a secret says the secret is missing",
			webhook: "  public_url: https://h.example.com\n",
			want:    []string{noSecret},
		},
		{
			name:    "public_url without a secret set, the variable empty",
			webhook: "  secret: ${S}\n  public_url: https://h.example.com\n",
			env:     map[string]string{"S": ""},
			want:    []string{noSecret + " (line 2)"},
		},
		{
			name:    "secret without public_url",
			webhook: "  secret: " + webhookSecret + "\n",
			want:    []string{noURL},
		},
		{
			name:    "both problems at once",
			webhook: "  secret: short\n  public_url: ftp://h.example.com\n",
			want:    []string{minLen + " (line 2)", "webhooks.public_url: must use http or https (line 3)"},
		},
		{
			name:    "public_url relative",
			webhook: "  secret: " + webhookSecret + "\n  public_url: chimport.example.com\n",
			want:    []string{"webhooks.public_url: must be an absolute http or https URL (it has no scheme) (line 3)"},
		},
		{
			name:    "public_url with a query, from the environment, not quoted",
			webhook: "  secret: " + webhookSecret + "\n  public_url: ${U}\n",
			env:     map[string]string{"U": "https://h.example.com/?key=hidden-value"},
			want:    []string{"webhooks.public_url: must not have a query (?...): the webhook routes are appended to it (line 3)"},
		},
		{
			name:    "public_url with an empty query",
			webhook: "  secret: " + webhookSecret + "\n  public_url: https://h.example.com/?\n",
			want:    []string{"webhooks.public_url: must not have a query (?...): the webhook routes are appended to it (line 3)"},
		},
		{
			name:    "public_url with a fragment",
			webhook: "  secret: " + webhookSecret + "\n  public_url: \"https://h.example.com/#top\"\n",
			want:    []string{"webhooks.public_url: must not have a fragment (#...): the webhook routes are appended to it (line 3)"},
		},
		{
			name:    "public_url with user info",
			webhook: "  secret: " + webhookSecret + "\n  public_url: https://user:hidden-value@h.example.com\n",
			want:    []string{"webhooks.public_url: must not hold a user name or password: the token in each webhook URL is the credential (line 3)"},
		},
		{
			name:    "a connection's webhooks must be a boolean",
			webhook: "  secret: " + webhookSecret + "\n  public_url: https://h.example.com\n",
			conn:    "    webhooks: sometimes\n",
			want:    []string{`connections[0].webhooks: must be true or false, got "sometimes" (line 6)`},
		},
		{
			name:    "an unknown key in the block",
			webhook: "  secret: " + webhookSecret + "\n  public_url: https://h.example.com\n  publicurl: x\n",
			want:    []string{"webhooks.publicurl: unknown key, did you mean public_url? (line 4)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := "webhooks:\n" + tt.webhook + "connections:\n  - name: a\n" + tt.conn + valid
			_, err := Parse([]byte(yaml), "x", env(tt.env))
			got := problemStrings(t, err)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			for _, secret := range []string{"short-secret-15", "tiny-secret", webhookSecret, "hidden-value"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error quotes %q:\n%v", secret, err)
				}
			}
		})
	}
}

func TestWebhooksPublicURLAccepted(t *testing.T) {
	for _, u := range []string{
		"https://chimport.example.com",
		"https://chimport.example.com/",
		"http://127.0.0.1:8088",
		"https://example.com/chimport", // a proxy strips the path before --webhook-listen
	} {
		yaml := "webhooks:\n  secret: " + webhookSecret + "\n  public_url: " + u + "\nconnections:\n  - name: a\n" + valid
		if _, err := Parse([]byte(yaml), "x", nil); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestWebhooksValidateInCode(t *testing.T) {
	cfg := (&Config{
		Webhooks:    Webhooks{Secret: "0123456789abcdef", PublicURL: "https://h.example.com"},
		Connections: []Connection{{Name: "a", Mailchimp: Mailchimp{APIKey: "k-us2", ListID: "l"}, Target: Target{URL: "http://localhost:1"}}},
	}).WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	cfg.Webhooks.Secret = "0123456789abcde"
	want := "config: 1 problem:\n  webhooks.secret: must be at least 16 characters; a long random value, e.g. from openssl rand -hex 32"
	if err := cfg.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want\n%s", err, want)
	}
}

// The example's commented webhooks block works once uncommented.
func TestExampleWebhooksBlockParses(t *testing.T) {
	yaml := strings.NewReplacer(
		"# webhooks:\n", "webhooks:\n",
		"#   secret:", "  secret:",
		"#   public_url:", "  public_url:",
		"# webhooks: false", "webhooks: false",
	).Replace(Example())
	vars := map[string]string{"CHIMPORT_WEBHOOK_SECRET": webhookSecret}
	for k, v := range testEnv {
		vars[k] = v
	}
	cfg, err := Parse([]byte(yaml), "example", env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Webhooks.Enabled() || cfg.Webhooks.PublicURL != "https://chimport.example.com" || cfg.Connections[0].WebhooksOn(cfg.Webhooks) {
		t.Errorf("webhooks = %+v, connection's = %v; want on, with the example's URL, and the connection out", cfg.Webhooks, cfg.Connections[0].Webhooks)
	}
}
