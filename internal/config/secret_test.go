package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSecretNeverPrinted(t *testing.T) {
	cfg := mustLoad(t, "testdata/full.yaml", testEnv)
	conn := cfg.Connections[0]
	secrets := []string{testEnv["MAILCHIMP_API_KEY"], testEnv["TARGET_API_KEY"], testEnv["SHOP_API_KEY"], "0123456789abcdef"}
	if conn.Mailchimp.APIKey.Reveal() != testEnv["MAILCHIMP_API_KEY"] {
		t.Fatalf("Reveal() = %q, want the key", conn.Mailchimp.APIKey.Reveal())
	}

	outputs := map[string]string{}
	values := map[string]any{
		"*Config":   cfg,
		"Config":    *cfg,
		"Conn":      conn,
		"Secret":    conn.Mailchimp.APIKey,
		"*Secret":   &conn.Mailchimp.APIKey,
		"Headers":   conn.Target.Headers,
		"[]Conn":    cfg.Connections,
		"Mailchimp": conn.Mailchimp,
	}
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
			outputs[name+" "+verb] = fmt.Sprintf(verb, v)
		}
		outputs[name+" Sprint"] = fmt.Sprint(v)
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", name, err)
		}
		outputs[name+" json"] = string(j)
		y, err := yaml.Marshal(v)
		if err != nil {
			t.Fatalf("yaml.Marshal(%s): %v", name, err)
		}
		outputs[name+" yaml"] = string(y)
	}
	for _, h := range []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"slog json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
		{"slog text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
	} {
		var buf bytes.Buffer
		log := slog.New(h.new(&buf))
		log.Info("loaded", "config", cfg, "conn", conn, "key", conn.Mailchimp.APIKey, "headers", conn.Target.Headers)
		log.Info("group", slog.Group("mc", "key", conn.Mailchimp.APIKey))
		outputs[h.name] = buf.String()
	}

	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows a secret:\n%s", name, out)
			}
		}
		if !strings.Contains(out, redacted) {
			t.Errorf("%s does not show %s:\n%s", name, redacted, out)
		}
	}
}
