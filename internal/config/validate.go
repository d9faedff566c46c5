package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/adhocore/gronx"

	"github.com/chimport/chimport/internal/state"
)

// Validate reports every problem with c at once, as an *Error, or returns
// nil. It expects defaults to be applied already (Load does that; in code,
// call WithDefaults first). Messages never contain secret values.
func (c *Config) Validate() error {
	if ps := c.validate(); len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

type validator struct {
	problems []Problem
	// lists holds, by connection index, the ids of a list_id sequence that
	// Load has not expanded yet; that connection's ListID is empty.
	lists map[int][]string
	// nameOf names where connection i's name is, for a duplicate; nil
	// means connections[i].name.
	nameOf func(i int) string
	// noConnections, when set, replaces "required" for a config without
	// connections.
	noConnections string
}

func (v *validator) add(field, msg string) {
	v.problems = append(v.problems, Problem{Field: field, Message: msg})
}

// validate returns problems in field order; Load re-sorts them by line.
func (c *Config) validate() []Problem { return c.validateWith(&validator{}) }

func (c *Config) validateWith(v *validator) []Problem {
	v.state(c.State)
	v.alerts(c.Alerts)
	v.webhooks(c.Webhooks)
	if len(c.Connections) == 0 {
		v.add("connections", cmp.Or(v.noConnections, "required"))
	}
	first := map[string]int{}
	for i, conn := range c.Connections {
		p := joinIndex("connections", i)
		ids, isList := v.lists[i]
		v.connection(p, conn, ids, isList)
		if !validName(conn.Name) && conn.Parent == "" {
			continue
		}
		if j, dup := first[conn.Name]; dup {
			where := joinIndex("connections", j) + ".name"
			if v.nameOf != nil {
				where = v.nameOf(j)
			}
			v.add(p+".name", fmt.Sprintf("duplicate of %s %q", where, conn.Name))
		} else {
			first[conn.Name] = i
		}
	}
	return v.problems
}

// state checks the `state:` URL with the stores the program links (each
// store package registers its schemes with internal/state), so a new store
// needs no change here.
func (v *validator) state(s string) {
	if s == "" {
		v.add("state", "required")
		return
	}
	var bad *state.BadURLError
	if err := state.ValidateURL(s); errors.As(err, &bad) {
		v.add("state", bad.Reason+"; want "+bad.Want)
	}
}

func (v *validator) alerts(a Alerts) {
	if a.LagThreshold < 0 {
		v.add("alerts.lag_threshold", "must be 0 (off) or more")
	}
	if a.WebhookURL != "" {
		if u, err := url.Parse(a.WebhookURL.Reveal()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add("alerts.webhook_url", "must be an absolute http or https URL")
		}
	}
	if a.SNSTopicARN != "" {
		if msg := checkSNSTopicARN(a.SNSTopicARN); msg != "" {
			v.add("alerts.sns_topic_arn", msg)
		}
	}
}

// checkSNSTopicARN returns what is wrong with an SNS topic ARN, or "". A bad
// ARN is caught here rather than at the first alert, which may come weeks
// later and then be lost. Messages never quote the value, which may come
// from the environment.
func checkSNSTopicARN(s string) string {
	const want = "must be an SNS topic ARN, arn:aws:sns:<region>:<12-digit account id>:<topic name>"
	parts := strings.Split(s, ":")
	if len(parts) != 6 || parts[0] != "arn" {
		return want
	}
	partition, service, region, account, name := parts[1], parts[2], parts[3], parts[4], parts[5]
	switch {
	case partition != "aws" && !strings.HasPrefix(partition, "aws-"):
		return want + " (the partition after arn: is aws, aws-cn or aws-us-gov)"
	case service != "sns":
		return want + " (this ARN is not for SNS)"
	case !validRegion(region):
		return want + " (the region is missing or malformed)"
	case len(account) != 12 || strings.ContainsFunc(account, func(r rune) bool { return r < '0' || r > '9' }):
		return want + " (the account id must be 12 digits)"
	case !validTopicName(name):
		return want + " (a topic name is 1 to 256 letters, digits, - and _, with .fifo at the end for a FIFO topic)"
	}
	return ""
}

// validRegion accepts the shape of AWS region names (us-east-1,
// us-gov-west-1, eusc-de-east-1) without a list that would go stale.
func validRegion(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 3 {
		return false
	}
	for i, p := range parts {
		isNum := p != "" && !strings.ContainsFunc(p, func(r rune) bool { return r < '0' || r > '9' })
		isWord := p != "" && !strings.ContainsFunc(p, func(r rune) bool { return r < 'a' || r > 'z' })
		if (i == len(parts)-1 && !isNum) || (i < len(parts)-1 && !isWord) {
			return false
		}
	}
	return true
}

func validTopicName(s string) bool {
	base := strings.TrimSuffix(s, ".fifo")
	if base == "" || len(s) > 256 {
		return false
	}
	return !strings.ContainsFunc(base, func(r rune) bool {
		return r > unicode.MaxASCII || !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}

// connection checks c; ids are its list_id sequence when isList.
func (v *validator) connection(p string, c Connection, ids []string, isList bool) {
	switch name := p + ".name"; {
	case c.Parent != "":
		// A sub-connection built in code (Sub): its name is derived.
		if !validName(c.Parent) || c.Name != SubName(c.Parent, c.Mailchimp.ListID) {
			v.add(name, "a sub-connection's name must be <parent>.<list id>, its parent's name as a connection's; build it with Connection.Sub")
		}
	case c.Name == "":
		v.add(name, "required")
	case len(c.Name) > MaxNameLength:
		v.add(name, fmt.Sprintf("must be at most %d characters", MaxNameLength))
	case !validName(c.Name):
		v.add(name, fmt.Sprintf("must use only a-z, 0-9, _ and -, got %q", c.Name))
	}
	if c.Every <= 0 {
		v.add(p+".every", "must be greater than 0")
	}
	if c.ReconcileEvery <= 0 {
		v.add(p+".reconcile_every", "must be greater than 0")
	}
	if c.Cron != "" && !gronx.New().IsValid(c.Cron) {
		v.add(p+".cron", "is not a valid cron expression, e.g. \"*/30 * * * *\"")
	}
	if c.LagThreshold < 0 {
		v.add(p+".lag_threshold", "must be 0 (use alerts.lag_threshold) or more")
	}
	v.mailchimp(p+".mailchimp", c.Mailchimp, ids, isList)
	v.target(p+".target", c.Target)
	v.mapping(p+".mapping", c.Mapping)
	v.deletes(p, c)
}

func (v *validator) target(p string, t Target) {
	if t.URL == "" {
		v.add(p+".url", "required")
	} else if msg := checkHTTPURL(t.URL); msg != "" {
		v.add(p+".url", msg)
	}
	names := make([]string, 0, len(t.Headers))
	for k := range t.Headers {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		f := joinKey(p+".headers", k)
		val := t.Headers[k].Reveal()
		switch {
		case !validHeaderName(k):
			v.add(f, "is not a valid HTTP header name")
		case val == "":
			// Most often an environment variable set to "": sending an empty
			// Authorization would fail later and less clearly.
			v.add(f, "must not be empty")
		case strings.ContainsAny(val, "\r\n\x00"):
			v.add(f, "must not contain line breaks")
		}
	}
	if t.BatchSize < 1 || t.BatchSize > MaxBatchSize {
		v.add(p+".batch_size", fmt.Sprintf("must be between 1 and %d, got %d", MaxBatchSize, t.BatchSize))
	}
	if t.Timeout <= 0 {
		v.add(p+".timeout", "must be greater than 0")
	}
	if t.MaxRejected < 1 {
		v.add(p+".max_rejected", fmt.Sprintf("must be at least 1, got %d", t.MaxRejected))
	}
}

// deletes checks target.deletes and the settings it uses, which depend on
// the mapping: a delete names a record by the member id, so the mapping must
// send the id under some key, and a tombstone must not overwrite that key.
func (v *validator) deletes(p string, c Connection) {
	t, tp := c.Target, p+".target"
	if !slices.Contains(DeleteModes, t.Deletes) {
		v.add(tp+".deletes", fmt.Sprintf("must be %s (the default), %s or %s, got %q", DeletesTombstone, DeletesRequest, DeletesOff, t.Deletes))
		return
	}
	idKey, hasID := c.Mapping.idKey()
	if t.Deletes != DeletesOff && !hasID && len(c.Mapping) > 0 {
		v.add(tp+".deletes", fmt.Sprintf("%s needs the member id in each record, and no mapping field has the path id; "+
			"add one (e.g. id: id), or set deletes: off to leave the records of members who left in the target", t.Deletes))
	}
	if t.Deletes == DeletesTombstone {
		v.tombstone(tp+".tombstone", t.Tombstone, idKey)
	}
	switch {
	case t.Deletes == DeletesRequest && t.DeleteURL == "":
		v.add(tp+".delete_url", "required with deletes: request, e.g. https://api.example.com/records/{id}")
	case t.Deletes == DeletesRequest:
		if msg := checkDeleteURL(t.DeleteURL); msg != "" {
			v.add(tp+".delete_url", msg)
		}
	case t.DeleteURL != "":
		v.add(tp+".delete_url", fmt.Sprintf("is only used with deletes: request, and this connection's deletes is %s; "+
			"remove it, or write delete_url: ~ in the connection to decline one from defaults", t.Deletes))
	}
}

func (v *validator) tombstone(p string, t Tombstone, idKey string) {
	if len(t) == 0 {
		v.add(p, "must set at least one field, e.g. status: deleted (a record with only its id does not tell the target it is gone)")
		return
	}
	keys := slices.Sorted(maps.Keys(t))
	for _, k := range keys {
		f := joinKey(p, k)
		switch {
		case k == "":
			v.add(f, "record key must not be empty")
		case k == idKey:
			v.add(f, fmt.Sprintf("sets the record's id key (mapping.%s: id); a tombstone's id is always the deleted member's", k))
		case !isScalar(t[k]):
			v.add(f, "must be a string, number, true, false or null")
		}
	}
}

// isScalar reports whether a tombstone value (set in code) encodes as a
// JSON string, number, boolean or null.
func isScalar(x any) bool {
	switch x := x.(type) {
	case nil, string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, json.Number:
		return true
	case float32:
		return !math.IsInf(float64(x), 0) && !math.IsNaN(float64(x))
	case float64:
		return !math.IsInf(x, 0) && !math.IsNaN(x)
	}
	return false
}

// idKey returns the record key of the first field that sends the member id
// (path id), as mapping.Mapping.IDKey does for the compiled mapping.
func (m Mapping) idKey() (string, bool) {
	for _, f := range m {
		if f.Path == "id" {
			return f.Key, true
		}
	}
	return "", false
}

// idPlaceholder stands for {id} while a delete URL is parsed; url.Parse
// leaves it as it is.
const idPlaceholder = "chimport0id0placeholder"

// checkDeleteURL returns what is wrong with a delete_url template, or "". Like
// checkHTTPURL, it never quotes the URL.
func checkDeleteURL(s string) string {
	if n := strings.Count(s, "{id}"); n != 1 {
		return fmt.Sprintf("must contain {id} exactly once, e.g. https://api.example.com/records/{id} (it contains it %d times)", n)
	}
	filled := strings.Replace(s, "{id}", idPlaceholder, 1)
	if msg := checkHTTPURL(filled); msg != "" {
		return msg
	}
	u, _ := url.Parse(filled) // checkHTTPURL parsed it
	if !strings.Contains(u.Path, idPlaceholder) && !strings.Contains(u.RawQuery, idPlaceholder) {
		return "must have its {id} in the path or the query, e.g. https://api.example.com/records/{id}"
	}
	return ""
}

func (v *validator) mapping(p string, m Mapping) {
	if len(m) == 0 {
		v.add(p, "must map at least one field")
		return
	}
	seen := map[string]bool{}
	for _, f := range m {
		fp := joinKey(p, f.Key)
		switch {
		case f.Key == "":
			v.add(fp, "record key must not be empty")
		case seen[f.Key]:
			v.add(fp, "is repeated; record keys must be unique")
		case f.Path == "":
			v.add(fp, "needs a member path such as merge_fields.FNAME")
		case !validDotPath(f.Path):
			v.add(fp, fmt.Sprintf("%q is not a dot path such as merge_fields.FNAME", f.Path))
		}
		seen[f.Key] = true
	}
}

// checkHTTPURL returns what is wrong with an endpoint URL, or "". It never
// quotes the URL: it may carry a token in its query or user info.
func checkHTTPURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "must be an absolute http or https URL"
	case u.Scheme == "":
		return "must be an absolute http or https URL (it has no scheme)"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must use http or https"
	case u.Hostname() == "":
		return "must be an absolute http or https URL with a host"
	}
	return ""
}

func validName(s string) bool {
	if s == "" || len(s) > MaxNameLength {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func isWord(s string) bool { return plainKey(s) }

// validHeaderName accepts an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > unicode.MaxASCII || !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

func validDotPath(s string) bool {
	for seg := range strings.SplitSeq(s, ".") {
		if seg == "" || strings.ContainsFunc(seg, unicode.IsSpace) {
			return false
		}
	}
	return true
}
