package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
)

// MinSecretLen is the shortest webhooks.secret accepted.
const MinSecretLen = 16

// PathPrefix starts every webhook route.
const PathPrefix = "/webhooks/mailchimp/"

// Token is the credential in a connection's webhook URL: HMAC-SHA256 of
// the connection name under the secret, in hex. It is derived rather than
// stored, so every worker knows every token from the config alone, and a
// token leaked for one connection says nothing of another's.
func Token(secret, connection string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(connection))
	return hex.EncodeToString(mac.Sum(nil))
}

// validToken reports, in constant time, whether token is connection's.
func validToken(secret, connection, token string) bool {
	return hmac.Equal([]byte(token), []byte(Token(secret, connection)))
}

// URL is the address Mailchimp calls for connection: publicURL (the base
// URL chimport is reached at, with or without a trailing slash) and the
// route.
func URL(publicURL, secret, connection string) string {
	return strings.TrimRight(publicURL, "/") + PathPrefix + url.PathEscape(connection) + "/" + Token(secret, connection)
}

// Masked is a webhook URL with its token hidden, for output and logs;
// any other URL comes back as it was.
func Masked(u string) string {
	i := strings.Index(u, PathPrefix)
	if i < 0 {
		return u
	}
	rest := u[i+len(PathPrefix):]
	slash := strings.LastIndexByte(rest, '/')
	if slash < 0 {
		return u
	}
	return u[:i+len(PathPrefix)] + rest[:slash+1] + "****"
}

// Ours reports whether u is chimport's webhook URL for connection under
// publicURL, whatever the token: what `chimport webhooks remove` deletes
// and `install` recognises as already there.
func Ours(u, publicURL, connection string) bool {
	prefix := strings.TrimRight(publicURL, "/") + PathPrefix + url.PathEscape(connection) + "/"
	return strings.HasPrefix(u, prefix) && !strings.Contains(u[len(prefix):], "/")
}
