package mcsim

import (
	"crypto/md5"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"time"
)

// Member statuses, as the API spells them. Archived is a status of its own:
// the members endpoint only returns archived members when asked for them.
const (
	StatusSubscribed    = "subscribed"
	StatusUnsubscribed  = "unsubscribed"
	StatusCleaned       = "cleaned"
	StatusPending       = "pending"
	StatusTransactional = "transactional"
	StatusArchived      = "archived"
)

// statusCode is the compact form of a status kept next to each stored member,
// so filtering a large list scans a dense slice instead of chasing pointers.
type statusCode uint8

const (
	codeInvalid statusCode = iota
	codeSubscribed
	codeUnsubscribed
	codeCleaned
	codePending
	codeTransactional
	codeArchived
)

func parseStatus(s string) statusCode {
	switch s {
	case StatusSubscribed:
		return codeSubscribed
	case StatusUnsubscribed:
		return codeUnsubscribed
	case StatusCleaned:
		return codeCleaned
	case StatusPending:
		return codePending
	case StatusTransactional:
		return codeTransactional
	case StatusArchived:
		return codeArchived
	}
	return codeInvalid
}

// Member is one audience member with the fields the members endpoint returns.
//
// Zero times are served as "" (the API never sends null), as are empty
// strings. TagsCount is not stored: it is always len(Tags).
type Member struct {
	ID              string // hex MD5 of the lower-cased EmailAddress; kept in step by the simulator
	EmailAddress    string
	UniqueEmailID   string
	ContactID       string
	FullName        string
	WebID           int64
	EmailType       string // "html" or "text"
	Status          string // one of the Status* constants
	MergeFields     map[string]any
	Interests       map[string]bool
	Stats           MemberStats
	IPSignup        string
	TimestampSignup time.Time
	IPOpt           string
	TimestampOpt    time.Time
	MemberRating    int
	LastChanged     time.Time
	Language        string
	VIP             bool
	EmailClient     string
	Location        Location
	Source          string
	Tags            []Tag
	ListID          string
}

// MemberStats holds a member's engagement rates (0..1).
type MemberStats struct {
	AvgOpenRate  float64
	AvgClickRate float64
}

// Location is where Mailchimp thinks a member is; all zero when unknown.
type Location struct {
	Latitude    float64
	Longitude   float64
	GMTOff      int
	DSTOff      int
	CountryCode string
	Timezone    string
}

// Tag is a member tag.
type Tag struct {
	ID   int64
	Name string
}

// MemberID returns the id Mailchimp gives a member with this email address:
// the hex MD5 of the lower-cased address.
func MemberID(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:])
}

// clone returns a deep copy, so a caller's edits can never reach a stored
// member that a request may be encoding at the same time.
func (m *Member) clone() Member {
	c := *m
	c.MergeFields = maps.Clone(m.MergeFields)
	c.Interests = maps.Clone(m.Interests)
	c.Tags = slices.Clone(m.Tags)
	return c
}

// MarshalJSON encodes the member exactly as the members endpoint serves it
// with the default fields.
func (m Member) MarshalJSON() ([]byte, error) {
	return appendMember(nil, &m, allMemberFields), nil
}

// formatTime renders a timestamp the way the API does
// (2015-10-21T15:41:36+00:00), or "" for the zero time.
func formatTime(t time.Time) string {
	return string(appendTime(nil, t))
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05")
	return append(b, "+00:00"...)
}
