package mailchimp

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
)

// credential is what a Client authenticates with: an API key (Basic auth)
// or an OAuth access token (Bearer). Either is a secret: it is sent only
// in the Authorization header and hidden from every error and log line.
type credential struct {
	secret string
	token  bool   // an OAuth access token, not an API key
	header string // the Authorization value of every API request
	id     keyID  // the limiter's and the data center cache's handle on it
}

func newCredential(apiKey, accessToken string) (credential, error) {
	apiKey, accessToken = strings.TrimSpace(apiKey), strings.TrimSpace(accessToken)
	switch {
	case apiKey != "" && accessToken != "":
		return credential{}, errors.New("mailchimp: both an API key and an access token are set; set exactly one (mailchimp.api_key or mailchimp.access_token)")
	case apiKey != "":
		return credential{secret: apiKey, header: "Basic " + basicAuth(apiKey), id: newKeyID(apiKey)}, nil
	case accessToken != "":
		return credential{secret: accessToken, token: true, header: "Bearer " + accessToken, id: newTokenID(accessToken)}, nil
	}
	return credential{}, errors.New("mailchimp: neither an API key nor an access token is set; set exactly one (mailchimp.api_key or mailchimp.access_token)")
}

func basicAuth(key string) string {
	return base64.StdEncoding.EncodeToString([]byte(basicUser + ":" + key))
}

// redactor hides the credential in every form it travels in. The longer
// forms come first, so "Bearer <token>" goes whole rather than leaving
// "Bearer " behind.
func (cr credential) redactor() *strings.Replacer {
	if cr.token {
		return strings.NewReplacer(
			"Bearer "+cr.secret, "[redacted]",
			"OAuth "+cr.secret, "[redacted]",
			cr.secret, "[redacted]",
		)
	}
	return strings.NewReplacer(
		"Basic "+basicAuth(cr.secret), "[redacted]",
		basicAuth(cr.secret), "[redacted]",
		cr.secret, "[redacted]",
	)
}

// keyID identifies a credential without holding it: the limiter's map and
// the data center cache must not become more places the secret lives. Keys
// and tokens are hashed with different prefixes, so a key and a token
// never share a limiter slot, whatever their bytes.
type keyID [sha256.Size]byte

func newKeyID(apiKey string) keyID { return sha256.Sum256([]byte("api-key\x00" + apiKey)) }

func newTokenID(token string) keyID { return sha256.Sum256([]byte("oauth-access-token\x00" + token)) }

// Datacenter returns the data center of an API key, the suffix after its
// last '-' ("...-us6" gives "us6"). The error never contains key material.
func Datacenter(apiKey string) (string, error) {
	apiKey = strings.TrimSpace(apiKey)
	i := strings.LastIndexByte(apiKey, '-')
	if i < 1 || i == len(apiKey)-1 {
		return "", errors.New(`mailchimp: the API key has no data center suffix (expected "<key>-<dc>", e.g. "...-us6")`)
	}
	dc := strings.ToLower(apiKey[i+1:])
	if !validDC(dc) {
		// Do not echo the suffix: a mangled key may put secret bytes there.
		return "", errors.New(`mailchimp: the API key's data center suffix is not letters and digits (expected e.g. "-us6")`)
	}
	return dc, nil
}

// validDC reports whether dc can name a data center host: letters and
// digits only, so it cannot point the client anywhere else.
func validDC(dc string) bool {
	for _, r := range dc {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return dc != ""
}

func dcBase(dc string) string { return "https://" + dc + ".api.mailchimp.com/3.0" }

// initialBase is the base URL New can know without any I/O: BaseURL, the
// API key's data center, or Config.DC for a token. "" means the token's
// data center is to be looked up (see Datacenters).
func initialBase(cfg Config, cr credential) (string, error) {
	if base := strings.TrimRight(cfg.BaseURL, "/"); base != "" {
		if !isPlainURL(base) {
			return "", errors.New("mailchimp: base URL must be an absolute http(s) URL without credentials or query")
		}
		return base, nil
	}
	dc := strings.ToLower(strings.TrimSpace(cfg.DC))
	if dc != "" && !validDC(dc) {
		return "", errors.New(`mailchimp: the data center (dc) must be letters and digits, e.g. "us6"`)
	}
	if !cr.token {
		keyDC, err := Datacenter(cr.secret)
		if err != nil {
			return "", err
		}
		if dc != "" && dc != keyDC {
			return "", errors.New("mailchimp: the data center (dc) differs from the API key's suffix; leave dc unset with an API key, the key names its own")
		}
		return dcBase(keyDC), nil
	}
	if dc != "" {
		return dcBase(dc), nil
	}
	return "", nil
}

// isPlainURL reports whether s is an absolute http(s) URL with a host and
// without user info or query: nothing a secret could hide in.
func isPlainURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil && u.RawQuery == ""
}
