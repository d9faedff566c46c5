package mailchimp

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/sync/singleflight"
)

// DefaultMetadataURL is Mailchimp's OAuth metadata endpoint, which names
// the data center of the account an access token belongs to.
const DefaultMetadataURL = "https://login.mailchimp.com/oauth2/metadata"

// MetadataEndpoint names the metadata lookup in errors and logs, whatever
// Config.MetadataURL is: "GET oauth2/metadata".
const MetadataEndpoint = "oauth2/metadata"

// Datacenters caches the API base URL of each access token, learnt from
// the OAuth metadata endpoint, so the thousands of connections of one
// token (one per audience) look it up once per process. Concurrent first
// lookups of a token share one request. A failed lookup is not kept: the
// next call asks again. The cache holds hashes of the tokens, never the
// tokens. Build one per process with NewDatacenters and hand it to every
// Client; it is safe for concurrent use.
type Datacenters struct {
	mu    sync.Mutex
	bases map[string]string // metadata URL + token hash -> base URL
	group singleflight.Group
}

// NewDatacenters returns an empty cache.
func NewDatacenters() *Datacenters {
	return &Datacenters{bases: make(map[string]string)}
}

// lookup returns the base URL for c's token: from the cache, or from the
// metadata endpoint through c (its limiter slot, retry policy and errors).
func (d *Datacenters) lookup(ctx context.Context, c *Client) (string, error) {
	key := c.metadataURL + "\x00" + hex.EncodeToString(c.cred.id[:])
	for {
		d.mu.Lock()
		base, ok := d.bases[key]
		d.mu.Unlock()
		if ok {
			return base, nil
		}
		ch := d.group.DoChan(key, func() (any, error) {
			// A flight that ended between the read above and this one
			// has cached the answer already: no second lookup.
			d.mu.Lock()
			base, ok := d.bases[key]
			d.mu.Unlock()
			if ok {
				return base, nil
			}
			base, err := c.fetchBase(ctx)
			if err == nil {
				d.mu.Lock()
				d.bases[key] = base
				d.mu.Unlock()
			}
			return base, err
		})
		select {
		case <-ctx.Done():
			return "", callError(c.connection, http.MethodGet, MetadataEndpoint, ctx.Err())
		case res := <-ch:
			if res.Err == nil {
				return res.Val.(string), nil
			}
			// The shared request ran on the first caller's context: when
			// that one gave up, the others, still willing, ask again.
			if isContextErr(res.Err) && ctx.Err() == nil {
				continue
			}
			return "", res.Err
		}
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// fetchBase asks the metadata endpoint where the token's account lives.
// The simulator answers with its own address in api_endpoint, which is why
// api_endpoint wins over dc.
func (c *Client) fetchBase(ctx context.Context) (string, error) {
	var base string
	r := request{method: http.MethodGet, endpoint: MetadataEndpoint, url: c.metadataURL,
		auth: "OAuth " + c.cred.secret, metadata: true}
	err := c.send(ctx, r, func(resp *http.Response) error {
		var body struct {
			DC          string `json:"dc"`
			APIEndpoint string `json:"api_endpoint"`
		}
		if err := decodeJSON(resp, &body); err != nil {
			return err
		}
		endpoint := strings.TrimRight(body.APIEndpoint, "/")
		dc := strings.ToLower(body.DC)
		switch {
		case endpoint != "" && isPlainURL(endpoint) && c.trusts(endpoint):
			base = endpoint + "/3.0"
		case endpoint == "" && validDC(dc):
			base = dcBase(dc)
		default:
			e := c.newError(KindBadBody, http.MethodGet, MetadataEndpoint, resp.StatusCode, nil)
			e.Detail = "the answer names no usable api_endpoint or dc"
			return e
		}
		return nil
	})
	return base, err
}

// trusts reports whether the token may go to endpoint, an api_endpoint the
// metadata endpoint named: never from https down to http, and from
// Mailchimp's own metadata endpoint only to one of Mailchimp's API hosts,
// so that an answer that went wrong cannot send the token elsewhere.
func (c *Client) trusts(endpoint string) bool {
	meta, err1 := url.Parse(c.metadataURL)
	api, err2 := url.Parse(endpoint)
	if err1 != nil || err2 != nil {
		return false
	}
	if meta.Scheme == "https" && api.Scheme != "https" {
		return false
	}
	if c.metadataURL == DefaultMetadataURL {
		return strings.HasSuffix(strings.ToLower(api.Hostname()), ".api.mailchimp.com")
	}
	return true
}

// baseURL is the API base URL, looked up on the first request of a token
// without Config.DC or BaseURL (New does no I/O).
func (c *Client) baseURL(ctx context.Context) (string, error) {
	c.mu.Lock()
	base := c.base
	c.mu.Unlock()
	if base != "" {
		return base, nil
	}
	base, err := c.datacenters.lookup(ctx, c)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.base = base
	c.mu.Unlock()
	return base, nil
}
