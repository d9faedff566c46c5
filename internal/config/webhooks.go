package config

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MinWebhookSecretLen is the shortest webhooks.secret accepted; the same
// as webhook.MinSecretLen, which the receiver enforces (a test keeps them
// equal without config importing the receiver).
const MinWebhookSecretLen = 16

// webhooks checks the webhooks block. Webhooks are on when the secret is
// set, so a public_url alone is a half-done set-up: the message says the
// secret is what is missing. Neither value is ever quoted: the secret is
// one, and the URL is where Mailchimp will send the tokens.
func (v *validator) webhooks(w Webhooks) {
	secret := w.Secret.Reveal()
	switch {
	case secret == "" && w.PublicURL != "":
		v.add("webhooks.secret", "required with webhooks.public_url: webhooks are on only when the secret is set "+
			fmt.Sprintf("(at least %d characters, e.g. from ${CHIMPORT_WEBHOOK_SECRET}); remove public_url to leave them off", MinWebhookSecretLen))
		return
	case secret == "":
		return
	case utf8.RuneCountInString(secret) < MinWebhookSecretLen:
		v.add("webhooks.secret", fmt.Sprintf("must be at least %d characters; a long random value, e.g. from openssl rand -hex 32", MinWebhookSecretLen))
	case strings.TrimSpace(secret) != secret:
		// Most often a line break left by the file or variable it came
		// from: the tokens would differ from those of a worker without it.
		v.add("webhooks.secret", "must not start or end with spaces or line breaks")
	}
	if w.PublicURL == "" {
		v.add("webhooks.public_url", "required with webhooks.secret: the base URL Mailchimp calls, reaching `chimport serve --webhook-listen`, e.g. https://chimport.example.com")
		return
	}
	if msg := checkPublicURL(w.PublicURL); msg != "" {
		v.add("webhooks.public_url", msg)
	}
}

// checkPublicURL returns what is wrong with webhooks.public_url, or "".
// Each webhook URL is this base with the route appended, so a query or a
// fragment would end up before the route, and user info would put a
// second credential in a URL that is printed (masked only in its token).
func checkPublicURL(s string) string {
	if msg := checkHTTPURL(s); msg != "" {
		return msg
	}
	u, _ := url.Parse(s) // checkHTTPURL parsed it
	switch {
	case u.RawQuery != "" || u.ForceQuery:
		return "must not have a query (?...): the webhook routes are appended to it"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "must not have a fragment (#...): the webhook routes are appended to it"
	case u.User != nil:
		return "must not hold a user name or password: the token in each webhook URL is the credential"
	}
	return ""
}
