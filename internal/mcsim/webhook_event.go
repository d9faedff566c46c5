package mcsim

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"time"
)

// Webhook event types, as Mailchimp names them in the type field.
const (
	EventSubscribe   = "subscribe"
	EventUnsubscribe = "unsubscribe"
	EventProfile     = "profile"
	EventUpemail     = "upemail"
	EventCleaned     = "cleaned"
	EventCampaign    = "campaign" // never sent: the simulator sends no campaigns
)

// FiredAtLayout is how an event's fired_at is written (2009-03-26 21:35:57),
// in UTC.
const FiredAtLayout = "2006-01-02 15:04:05"

// eventSource is who made a change, as a webhook's sources tell them
// apart. The mutation methods (Add, Change, ChangeAddress, Unsubscribe,
// Delete) stand for API calls; Churn stands for people: subscribers
// signing up, unsubscribing and editing their profile (user), and the
// account's admins archiving, moving and deleting members (admin).
type eventSource uint8

const (
	sourceAPI eventSource = iota
	sourceUser
	sourceAdmin
)

// memberEvent is one change of a member that a webhook may hear of. The
// members are stored ones, which are never mutated, so the payload can be
// written at any time.
type memberEvent struct {
	typ    string
	source eventSource
	at     time.Time // fired_at: when the change was stamped
	listID string
	old    *Member // before the change; nil for a new member
	cur    *Member // after it; nil once deleted for good
}

// changeEvents are the events an edit from old to cur fires, in order:
//   - archiving fires nothing (Mailchimp sends nothing one can count on);
//   - a new address fires upemail;
//   - a new status subscribed, unsubscribed or cleaned fires that event
//     (subscribe, unsubscribe with action unsub, cleaned);
//   - any other edit fires profile, and so does an edit that changed
//     nothing, as last_changed moved anyway: every change but an archive
//     fires at least one event.
func changeEvents(old, cur *Member) []string {
	if cur.Status == StatusArchived && old.Status != StatusArchived {
		return nil
	}
	var out []string
	if old.EmailAddress != cur.EmailAddress {
		out = append(out, EventUpemail)
	}
	otherStatus := false
	if old.Status != cur.Status {
		switch cur.Status {
		case StatusSubscribed:
			out = append(out, EventSubscribe)
		case StatusUnsubscribed:
			out = append(out, EventUnsubscribe)
		case StatusCleaned:
			out = append(out, EventCleaned)
		default:
			otherStatus = true
		}
	}
	if otherStatus || len(out) == 0 || profileChanged(old, cur) {
		out = append(out, EventProfile)
	}
	return out
}

// profileChanged reports whether an edit changed anything but the address,
// the status and the stamps that follow them.
func profileChanged(old, cur *Member) bool {
	a, b := *old, *cur
	for _, m := range []*Member{&a, &b} {
		m.ID, m.EmailAddress, m.Status, m.LastChanged, m.TimestampOpt = "", "", "", time.Time{}, time.Time{}
	}
	return !reflect.DeepEqual(a, b)
}

// form is the event's payload, as Mailchimp posts it (nested keys in
// brackets). data[id] and data[new_id] carry the member's unique_email_id,
// the short id Mailchimp's own examples show ("8a25ff1d98"), not the MD5
// member id: a receiver has to take the MD5 of the address, as it must
// against Mailchimp.
func (e *memberEvent) form() url.Values {
	v := url.Values{}
	v.Set("type", e.typ)
	v.Set("fired_at", e.at.UTC().Format(FiredAtLayout))
	v.Set("data[list_id]", e.listID)
	switch e.typ {
	case EventUpemail:
		v.Set("data[new_id]", e.cur.UniqueEmailID)
		v.Set("data[new_email]", e.cur.EmailAddress)
		v.Set("data[old_email]", e.old.EmailAddress)
		return v
	case EventCleaned:
		v.Set("data[email]", e.cur.EmailAddress)
		v.Set("data[reason]", "hard")
		v.Set("data[campaign_id]", "")
		return v
	}
	m := e.cur
	if m == nil { // deleted for good: what it was
		m = e.old
	}
	v.Set("data[id]", m.UniqueEmailID)
	v.Set("data[email]", m.EmailAddress)
	v.Set("data[email_type]", m.EmailType)
	v.Set("data[ip_opt]", m.IPOpt)
	v.Set("data[ip_signup]", m.IPSignup)
	v.Set("data[web_id]", strconv.FormatInt(m.WebID, 10))
	v.Set("data[merges][EMAIL]", m.EmailAddress)
	keys := make([]string, 0, len(m.MergeFields))
	for k := range m.MergeFields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		setFormValue(v, "data[merges]["+k+"]", m.MergeFields[k])
	}
	if e.typ == EventUnsubscribe {
		action := "unsub"
		if e.cur == nil {
			action = "delete"
		}
		v.Set("data[action]", action)
		v.Set("data[reason]", "manual")
		v.Set("data[campaign_id]", "")
	}
	return v
}

// setFormValue writes a merge field's value: text as it is, numbers as
// digits, an object (an address) as nested keys.
func setFormValue(v url.Values, key string, value any) {
	switch x := value.(type) {
	case nil:
		v.Set(key, "")
	case string:
		v.Set(key, x)
	case float64:
		v.Set(key, strconv.FormatFloat(x, 'f', -1, 64))
	case map[string]any:
		for k, sub := range x {
			setFormValue(v, key+"["+k+"]", sub)
		}
	default:
		v.Set(key, fmt.Sprint(x))
	}
}
