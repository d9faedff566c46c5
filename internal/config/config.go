package config

import (
	"strings"
	"time"
)

// Defaults for fields the file may leave out.
const (
	DefaultState     = "sqlite://chimport.db"
	DefaultEvery     = 90 * time.Minute
	DefaultSettle    = 60 * time.Second
	DefaultBatchSize = 1000
	DefaultTimeout   = 30 * time.Second
	// DefaultMaxRejected is how many records the target may newly refuse
	// in one run before the run stops as one whose mapping or target is
	// broken.
	DefaultMaxRejected = 100
	// DefaultReconcileEvery is how often at the least a connection compares
	// every member id with what its target holds.
	DefaultReconcileEvery = 24 * time.Hour
	// DefaultDeletes is how a record leaves the target unless target.deletes
	// says otherwise.
	DefaultDeletes = DeletesTombstone

	// MaxBatchSize bounds a target request so one POST stays a reasonable size.
	MaxBatchSize = 10000
	// MaxNameLength keeps connection names usable as state keys and metric labels.
	MaxNameLength = 64
	// MaxListIDLength bounds an audience id. Mailchimp's are 10 hex
	// characters; the bound leaves room for other ids (the simulator's
	// k0001l02) while keeping a sub-connection's name short.
	MaxListIDLength = 64
	// MaxSubNameLength bounds a sub-connection's name, <name>.<list id>:
	// state stores, metric labels and status output take names this long.
	MaxSubNameLength = MaxNameLength + 1 + MaxListIDLength

	// DefaultMetadataURL is Mailchimp's OAuth metadata endpoint, which tells
	// the data center of an access token.
	DefaultMetadataURL = "https://login.mailchimp.com/oauth2/metadata"
	// AllLists as mailchimp.list_id makes a connection cover every audience
	// of the account, discovered at each run.
	AllLists = "*"
)

// The values of target.deletes: how the record of a member who left (deleted
// for good, changed address, or left the status filter) leaves the target.
const (
	// DeletesTombstone writes a tombstone record, {<id key>: <member id>,
	// ...target.tombstone}, in the same POST as the upserts.
	DeletesTombstone = "tombstone"
	// DeletesRequest sends DELETE target.delete_url, {id} replaced by the
	// member id, for each member who left.
	DeletesRequest = "request"
	// DeletesOff leaves the records of members who left in the target.
	DeletesOff = "off"
)

// DeleteModes are the values target.deletes accepts, the default first.
var DeleteModes = []string{DeletesTombstone, DeletesRequest, DeletesOff}

// Config is the whole configuration file after loading. The file's defaults
// block is not kept: it has been merged into each connection.
type Config struct {
	// State says where sync progress is kept: sqlite://PATH (the default,
	// sqlite://chimport.db) or dynamodb://[?query].
	State string `yaml:"state"`
	// Alerts configures lag alerts and notifiers.
	Alerts Alerts `yaml:"alerts"`
	// Webhooks turns on Mailchimp's webhooks as real-time hints, for
	// `chimport serve --webhook-listen`; off while its secret is empty.
	Webhooks Webhooks `yaml:"webhooks"`
	// Connections are the audiences to sync; at least one is required.
	Connections []Connection `yaml:"connections"`
}

// Alerts says who hears about connections that need a person. Alerts always
// go to the log; the fields below add other notifiers.
type Alerts struct {
	// SNSTopicARN, when set, also publishes every alert to this Amazon SNS
	// topic, e.g. "arn:aws:sns:eu-west-1:123456789012:chimport-alerts".
	// Credentials come from the AWS environment (the task role on ECS); the
	// region is the topic's own.
	SNSTopicARN string `yaml:"sns_topic_arn"`
	// LagThreshold alerts once when a connection's lag (now minus the end
	// of its last completed window) passes it, and sends one recovery
	// notice when the connection is fresh again. 0 (the default) turns lag
	// alerts off. A connection's own lag_threshold overrides it.
	LagThreshold Duration `yaml:"lag_threshold"`
	// WebhookURL, when set, also POSTs every alert as JSON with a
	// Slack-compatible "text" field. It often holds a token, so it is a
	// Secret: never printed.
	WebhookURL Secret `yaml:"webhook_url"`
}

// Webhooks configures the webhook receiver. Webhooks are on when Secret is
// set; a connection opts out with `webhooks: false`.
type Webhooks struct {
	// Secret derives each connection's webhook token (webhook.Token): at
	// least 16 characters, never printed.
	Secret Secret `yaml:"secret"`
	// PublicURL is the base URL Mailchimp calls, reaching `serve
	// --webhook-listen`, e.g. https://chimport.example.com; required with
	// Secret. An absolute http or https URL without query, fragment or
	// user info: each webhook URL is this with the route appended. A path
	// is kept (for a proxy that strips it before the receiver).
	PublicURL string `yaml:"public_url"`
}

// Enabled reports whether webhooks are configured.
func (w Webhooks) Enabled() bool { return w.Secret != "" }

// Connection syncs one Mailchimp audience to one target, or with ListID
// AllLists every audience of an account (see Discovers and Sub).
type Connection struct {
	// Name identifies the connection in state, logs, metrics and the
	// --connection flag: 1 to 64 characters of a-z, 0-9, _ and -, unique.
	// A sub-connection's name is SubName(parent, list id), which has a '.'
	// no configured name has, and is at most MaxSubNameLength long.
	Name string `yaml:"name"`
	// Parent is "" for a connection as written, and for a sub-connection
	// (one audience of a list_id sequence, or of "*") the Name of the
	// connection it came from.
	Parent string `yaml:"-"`
	// Every is how often `chimport serve` syncs this connection (default 90m).
	Every Duration `yaml:"every"`
	// Cron, when set, schedules the connection on a cron expression
	// ("*/30 * * * *") instead of Every.
	Cron string `yaml:"cron"`
	// ReconcileEvery is the longest a connection goes without a reconcile
	// (default 24h): a scan of every member id, compared with the ids its
	// target holds, which finds the members who left without a trace in
	// the API (deleted for good, changed address, left the status filter)
	// so that target.deletes can remove their records. A run reconciles
	// sooner when the audience's counts say a member left. It must be
	// greater than 0; a period shorter than Every means every run.
	ReconcileEvery Duration `yaml:"reconcile_every"`
	// LagThreshold overrides alerts.lag_threshold for this connection.
	LagThreshold Duration `yaml:"lag_threshold"`
	// Mailchimp says which audience to read.
	Mailchimp Mailchimp `yaml:"mailchimp"`
	// Target says where the records go.
	Target Target `yaml:"target"`
	// Mapping is the record shape; DefaultMapping when the file has none.
	Mapping Mapping `yaml:"mapping"`
	// Webhooks, when false, keeps this connection out of the webhooks
	// even when webhooks.secret is set; nil (unset) means in.
	Webhooks *bool `yaml:"webhooks"`
	// Origin is where the connection is written; Warnings names it.
	Origin Origin `yaml:"-"`
}

// WebhooksOn reports whether the connection takes webhooks under cfg.
func (c Connection) WebhooksOn(w Webhooks) bool {
	return w.Enabled() && (c.Webhooks == nil || *c.Webhooks)
}

// Mailchimp is the audience side of a connection. Exactly one of APIKey and
// AccessToken is set.
type Mailchimp struct {
	// APIKey is "<key>-<dc>", e.g. "0123abcd-us6"; the dc picks the server.
	APIKey Secret `yaml:"api_key"`
	// AccessToken is an OAuth access token, the alternative to APIKey for
	// apps that connect other people's accounts. It is a Secret like a key.
	AccessToken Secret `yaml:"access_token"`
	// DC is the data center of an access token, e.g. "us6"; optional. With
	// an API key it is refused: the key's suffix is the data center.
	DC string `yaml:"dc"`
	// MetadataURL is where the client looks up an access token's data
	// center when neither DC nor BaseURL says it (default
	// DefaultMetadataURL). Set it only for tests and proxies.
	MetadataURL string `yaml:"metadata_url"`
	// ListID is the audience ("list") id, e.g. "a1b2c3d4e5": 1 to 64
	// letters, digits, _ and -. AllLists ("*") covers every audience of the
	// account. The file may also give a list of ids, which Load expands
	// into one sub-connection per id, so a loaded ListID is never a list.
	ListID string `yaml:"list_id"`
	// BaseURL is the API root without a trailing slash. Left empty, it is
	// https://<dc>.api.mailchimp.com/3.0, dc from the API key or from DC;
	// with an access token and no DC it stays empty, and the client finds
	// the data center through MetadataURL. Set it to point at a simulator.
	BaseURL string `yaml:"base_url"`
	// Settle holds back changes younger than this until the next run, so a
	// member being edited right now is read once it has settled (default 60s;
	// 0 reads right up to now).
	Settle Duration `yaml:"settle"`
	// Statuses limits the sync to members with these statuses. Empty means
	// every status, archived included, so archivals reach the target.
	Statuses []string `yaml:"statuses"`
}

// Target is the receiving side of a connection.
type Target struct {
	// URL receives the records as a JSON array in a POST.
	URL string `yaml:"url"`
	// Headers are sent with every request, e.g. Authorization.
	Headers map[string]Secret `yaml:"headers"`
	// BatchSize is the most records per request (default 1000, at most 10000).
	BatchSize int `yaml:"batch_size"`
	// Timeout bounds one request (default 30s).
	Timeout Duration `yaml:"timeout"`
	// MaxRejected is the most records the target may newly refuse in one
	// run (default 100, at least 1): records already in the rejected log
	// and refused again do not count. A refused record (400 or 422 for it
	// on its own) goes into the rejected log and the rest of the run goes
	// on; past this many, the refusals are taken for a broken mapping or
	// target rather than a few bad records, and the run stops.
	MaxRejected int `yaml:"max_rejected"`
	// Deletes says how the record of a member who left the audience (or
	// the status filter) leaves the target: "tombstone" (the default) writes
	// a tombstone record, the record's id and Tombstone, in the batch's
	// POST; "request" sends DELETE DeleteURL; "off" leaves the record in the
	// target. Every mode but off needs the mapping to hold the member id (a
	// field whose path is id): the target knows its records by it.
	Deletes string `yaml:"deletes"`
	// Tombstone is what a tombstone record carries besides its id (default
	// status: deleted), e.g. {status: deleted, deleted: true}. Values are
	// strings, numbers, true, false or null (~ sends JSON null; it does not
	// drop a key from defaults as it does for a header). Its keys merge with
	// those of defaults; a tombstone written in a connection replaces the
	// built-in default whole. It must not set the record's id key. Only used
	// by deletes: tombstone.
	Tombstone Tombstone `yaml:"tombstone"`
	// DeleteURL is where deletes: request sends a DELETE per member who
	// left: an http or https URL with {id} exactly once in its path or
	// query, replaced by the escaped member id, e.g.
	// https://api.example.com/records/{id}. Required by deletes: request
	// and refused with any other mode (write delete_url: ~ in a connection
	// to decline one from defaults). 2xx, 404 and 410 all mean the record
	// is gone; other answers are retried or stop the run as for the POST.
	DeleteURL string `yaml:"delete_url"`
}

// Statuses are the member statuses Mailchimp knows, in its documentation's order.
var Statuses = []string{"subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"}

// WithDefaults returns a copy of c with State and every connection defaulted
// (see Connection.WithDefaults).
func (c *Config) WithDefaults() *Config {
	out := *c
	if out.State == "" {
		out.State = DefaultState
	}
	out.Connections = make([]Connection, len(c.Connections))
	for i, conn := range c.Connections {
		out.Connections[i] = conn.WithDefaults()
	}
	return &out
}

// WithDefaults returns a copy of c in which every zero field that has a
// default gets it, and an empty Mailchimp.BaseURL is derived from the API key
// or from DC (see Mailchimp.BaseURL).
//
// Zero cannot mean "unset" for Settle once a file has been read, because
// settle: 0s is a real setting. Load therefore applies these defaults before
// it reads a connection, not after; callers building a Connection in code
// call WithDefaults first and then set the fields they want.
func (c Connection) WithDefaults() Connection {
	if c.Every == 0 {
		c.Every = Duration(DefaultEvery)
	}
	if c.ReconcileEvery == 0 {
		c.ReconcileEvery = Duration(DefaultReconcileEvery)
	}
	if c.Mailchimp.Settle == 0 {
		c.Mailchimp.Settle = Duration(DefaultSettle)
	}
	if c.Mailchimp.BaseURL == "" {
		c.Mailchimp.BaseURL = c.Mailchimp.defaultBaseURL()
	}
	if c.Mailchimp.MetadataURL == "" {
		c.Mailchimp.MetadataURL = DefaultMetadataURL
	}
	if c.Target.BatchSize == 0 {
		c.Target.BatchSize = DefaultBatchSize
	}
	if c.Target.Timeout == 0 {
		c.Target.Timeout = Duration(DefaultTimeout)
	}
	if c.Target.MaxRejected == 0 {
		c.Target.MaxRejected = DefaultMaxRejected
	}
	if c.Target.Deletes == "" {
		c.Target.Deletes = DefaultDeletes
	}
	if c.Target.Tombstone == nil {
		c.Target.Tombstone = DefaultTombstone()
	}
	if c.Mapping == nil {
		c.Mapping = DefaultMapping()
	}
	return c
}

// prefill lets the decoder lay a connection from the file over its defaults.
func (c *Connection) prefill() { *c = c.WithDefaults() }

// defaultBaseURL is the API root for the key's datacenter or for DC, or ""
// when there is neither (Validate reports a bad key; an access token without
// DC is looked up at run time).
func (m Mailchimp) defaultBaseURL() string {
	dc, ok := datacenter(m.APIKey)
	if m.APIKey == "" && validDC(m.DC) {
		dc, ok = m.DC, true
	}
	if !ok {
		return ""
	}
	return "https://" + dc + ".api.mailchimp.com/3.0"
}

// datacenter returns the part of a Mailchimp API key after the last '-', the
// server the key belongs to, when it looks like one (letters then digits).
func datacenter(key Secret) (string, bool) {
	i := strings.LastIndexByte(string(key), '-')
	if i <= 0 {
		return "", false
	}
	dc := string(key[i+1:])
	return dc, validDC(dc)
}

// validDC reports whether dc looks like a data center: letters then digits.
func validDC(dc string) bool {
	letters := strings.IndexFunc(dc, func(r rune) bool { return r < 'a' || r > 'z' })
	return letters > 0 && strings.IndexFunc(dc[letters:], func(r rune) bool { return r < '0' || r > '9' }) < 0
}
