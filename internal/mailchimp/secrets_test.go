package mailchimp_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chimport/chimport/internal/mailchimp"
)

// The API key or access token and the Authorization value appear in no
// error and no log line, even when the server echoes them back: at the
// API and, for a token, at the metadata endpoint.
func TestNoSecretsInErrorsOrLogs(t *testing.T) {
	t.Run("api key", func(t *testing.T) {
		secret := testKey[:strings.LastIndexByte(testKey, '-')]
		auth := base64.StdEncoding.EncodeToString([]byte("chimport:" + testKey))
		checkNoSecrets(t, func(cfg *mailchimp.Config) {}, secret, auth, "Basic ")
	})
	t.Run("access token", func(t *testing.T) {
		checkNoSecrets(t, func(cfg *mailchimp.Config) { cfg.APIKey, cfg.AccessToken = "", testToken }, testToken, testToken[:8], "Bearer ")
	})
	t.Run("access token at the metadata endpoint", func(t *testing.T) {
		checkNoSecrets(t, func(cfg *mailchimp.Config) {
			cfg.MetadataURL = strings.TrimSuffix(cfg.BaseURL, "/3.0") + "/oauth2/metadata"
			cfg.APIKey, cfg.AccessToken, cfg.BaseURL = "", testToken, ""
		}, testToken, testToken[:8], "Bearer ")
	})
}

// checkNoSecrets runs every echoing fault against a client that edit
// configures, and looks for each of bad in what comes out.
func checkNoSecrets(t *testing.T, edit func(*mailchimp.Config), bad ...string) {
	echoAuth := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, key, _ := r.BasicAuth()
			if key == "" {
				key = strings.TrimPrefix(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "OAuth ")
			}
			writeProblem(w, status, "Echo "+key, "you sent "+r.Header.Get("Authorization")+" and key "+key,
				mailchimp.FieldError{Field: key, Message: r.Header.Get("Authorization")})
		}
	}
	echoHTML := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "<pre>%s</pre>", r.Header.Get("Authorization"))
	}
	scenarios := map[string]http.HandlerFunc{
		"401 echoing the key": echoAuth(401),
		"400 echoing the key": echoAuth(400),
		"503 echoing the key": echoAuth(503),
		"502 HTML echo":       echoHTML,
		"dropped connection":  dropConnection,
		"truncated body":      truncatedBody,
		"429 exhausted":       tooMany,
	}
	logger, logs := testLogger()
	var messages []string
	for name, h := range scenarios {
		s := newServer(t, h)
		cfg, _ := testConfig(s.URL)
		cfg.Logger = logger
		edit(&cfg)
		c := newClient(t, cfg)
		_, err := c.Members(context.Background(), testList, mailchimp.MembersQuery{})
		if err == nil {
			t.Fatalf("%s: expected an error", name)
		}
		messages = append(messages, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		if e, ok := err.(*mailchimp.Error); ok {
			if a, ok := e.Advice(); ok {
				messages = append(messages, a.Problem, a.Action)
			}
			if e.Err != nil {
				messages = append(messages, e.Err.Error())
			}
		}
	}
	// Cancellation mid-request.
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	cfg, _ := testConfig(s.URL)
	cfg.Logger = logger
	edit(&cfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	messages = append(messages, newClient(t, cfg).Ping(ctx).Error())

	if !strings.Contains(logs.String(), "retrying") {
		t.Fatalf("expected debug retry lines in the log, got %q", logs.String())
	}
	messages = append(messages, strings.Split(logs.String(), "\n")...)

	for _, m := range messages {
		for _, bad := range bad {
			if strings.Contains(m, bad) {
				t.Errorf("secret %q leaked in %q", bad, m)
			}
		}
	}
}
