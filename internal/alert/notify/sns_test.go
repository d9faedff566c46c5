package notify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/awstest"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/target"
)

// Secrets planted in the Mailchimp key and the target's Authorization
// header. Both servers echo them back in their error bodies.
const (
	plantedKey    = "5ecre7ma1lch1mpkey0123456789abcd-us6"
	plantedHeader = "Bearer 5ecre7-target-token"
)

// receiveOne waits for the one message a Notify sends, then checks no
// second one follows.
func receiveOne(t *testing.T, receive func(int32) []awstest.Notification) awstest.Notification {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got []awstest.Notification
	for len(got) == 0 && time.Now().Before(deadline) {
		got = append(got, receive(1)...)
	}
	got = append(got, receive(1)...)
	if len(got) != 1 {
		t.Fatalf("got %d messages for one Notify, want 1: %+v", len(got), got)
	}
	return got[0]
}

// The real clients fail against servers that echo the planted secrets; the
// alert NeedsPerson makes of it goes through goaws and comes out of SQS
// naming the connection, the status and the action, with no secret.
func TestSNSPublishesAlertsWithoutSecrets(t *testing.T) {
	topicARN, receive := awstest.TopicWithQueue(t, "chimport-alerts")
	n, err := NewSNSFromEnv(context.Background(), topicARN)
	if err != nil {
		t.Fatalf("NewSNSFromEnv: %v", err)
	}
	ctx := awstest.WaitContext(t, 30*time.Second)

	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		_, key, _ := r.BasicAuth()
		fmt.Fprintf(w, `{"type":"x","title":"API Key Invalid %s","status":401,"detail":"you sent %s","instance":"i-1"}`, key, r.Header.Get("Authorization"))
	}))
	t.Cleanup(echo.Close)
	mc, err := mailchimp.New(mailchimp.Config{APIKey: plantedKey, BaseURL: echo.URL + "/3.0", Connection: "newsletter"})
	if err != nil {
		t.Fatal(err)
	}
	_, mcErr := mc.Members(ctx, "a1b2c3d4e5", mailchimp.MembersQuery{})

	sink, err := target.NewHTTP(target.HTTPConfig{Connection: "shop", URL: echo.URL + "/record?token=querysecret", Headers: map[string]string{"Authorization": plantedHeader}})
	if err != nil {
		t.Fatal(err)
	}
	tgtErr := sink.Send(ctx, []json.RawMessage{json.RawMessage(`{"id":"1"}`)})

	secrets := []string{
		plantedKey, "5ecre7ma1lch1mpkey", base64.StdEncoding.EncodeToString([]byte("chimport:" + plantedKey)),
		plantedHeader, "5ecre7-target-token", "querysecret",
	}
	tests := []struct {
		connection string
		err        error
		want       []string // in the message
		subject    string
	}{
		{"newsletter", fmt.Errorf("view default: %w", mcErr), []string{"Connection:    newsletter", "HTTP status:   401 Unauthorized", "Check mailchimp.api_key"},
			"chimport: newsletter needs attention: Mailchimp rejected the API key (HTTP 401)"},
		{"shop", tgtErr, []string{"Connection:    shop", "HTTP status:   401 Unauthorized", "Check target.headers"},
			"chimport: shop needs attention: the target rejected the credentials (HTTP 401)"},
	}
	for _, tt := range tests {
		a, ok := alert.NeedsPerson(tt.connection, tt.err, at)
		if !ok {
			t.Fatalf("NeedsPerson(%v) = false", tt.err)
		}
		if err := n.Notify(ctx, a); err != nil {
			t.Fatalf("Notify: %v", err)
		}
		got := receiveOne(t, receive)
		if got.TopicArn != topicARN || got.Subject != tt.subject {
			t.Errorf("TopicArn, Subject = %q, %q; want %q, %q", got.TopicArn, got.Subject, topicARN, tt.subject)
		}
		if diff := cmp.Diff(a.Text(), got.Message); diff != "" {
			t.Errorf("Message is not Text() (-want +got):\n%s", diff)
		}
		for _, w := range tt.want {
			if !strings.Contains(got.Message, w) {
				t.Errorf("message lacks %q:\n%s", w, got.Message)
			}
		}
		if attrs := got.MessageAttributes; attrs["kind"].String() != "permanent_error" || attrs["connection"].String() != tt.connection {
			t.Errorf("message attributes = %+v, want kind and connection", attrs)
		}
		raw, _ := json.Marshal(got)
		for _, s := range secrets {
			if strings.Contains(string(raw), s) {
				t.Errorf("published message contains the secret %q:\n%s", s, raw)
			}
		}
	}
}

func TestSNSNotifyErrorNamesTheTopic(t *testing.T) {
	topicARN, _ := awstest.TopicWithQueue(t, "chimport-exists")
	missing := strings.TrimSuffix(topicARN, "chimport-exists") + "chimport-missing"
	n, err := NewSNSFromEnv(context.Background(), missing)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Notify(awstest.WaitContext(t, 30*time.Second), alert.Alert{Kind: alert.KindPermanentError, Connection: "x", Subject: "s", Problem: "p"})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Notify to a missing topic = %v, want an error naming %s", err, missing)
	}
}

func TestNewSNSFromEnvRejectsBadARNs(t *testing.T) {
	for _, s := range []string{"", "chimport-alerts", "arn:aws:sqs:us-east-1:123456789012:q", "arn:aws:sns::123456789012:t"} {
		if _, err := NewSNSFromEnv(context.Background(), s); err == nil {
			t.Errorf("NewSNSFromEnv(%q) = nil error", s)
		}
	}
}
