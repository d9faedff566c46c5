package webhook

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// Event types Mailchimp sends, as they come in the type field.
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypeProfile     = "profile"
	TypeUpemail     = "upemail"
	TypeCleaned     = "cleaned"
	TypeCampaign    = "campaign"
)

// Event is what chimport takes from a webhook: its type and the members it
// names, by member id (the MD5 of the lower-cased address). Nothing else
// of the payload is trusted: the values are fetched from Mailchimp.
type Event struct {
	Type    string
	ListID  string   // data[list_id], when given
	Members []string // to fetch; empty for an event about no member (campaign)
}

// Parse reads a form-encoded webhook payload. An event type chimport does
// not know is an error; a campaign event names no member.
//
//   - subscribe, unsubscribe, profile: data[id], or the MD5 of data[email].
//   - upemail: the old address's id (the MD5 of data[old_email]: its record
//     leaves the target once Mailchimp answers 404 for it) and the new id
//     (data[new_id], or the MD5 of data[new_email]).
//   - cleaned: the MD5 of data[email].
func Parse(form url.Values) (Event, error) {
	e := Event{Type: form.Get("type"), ListID: form.Get("data[list_id]")}
	switch e.Type {
	case TypeSubscribe, TypeUnsubscribe, TypeProfile:
		e.Members = appendID(e.Members, form.Get("data[id]"), form.Get("data[email]"))
	case TypeUpemail:
		e.Members = appendID(e.Members, "", form.Get("data[old_email]"))
		e.Members = appendID(e.Members, form.Get("data[new_id]"), form.Get("data[new_email]"))
	case TypeCleaned:
		e.Members = appendID(e.Members, "", form.Get("data[email]"))
	case TypeCampaign:
		return e, nil
	case "":
		return e, fmt.Errorf("webhook: no event type")
	default:
		return e, fmt.Errorf("webhook: unknown event type %q", e.Type)
	}
	if len(e.Members) == 0 {
		return e, fmt.Errorf("webhook: a %s event names no member (no id, no address)", e.Type)
	}
	return e, nil
}

// appendID appends the member id: id if it is one, else the MD5 of email.
func appendID(ids []string, id, email string) []string {
	if isMemberID(id) {
		return append(ids, strings.ToLower(id))
	}
	if email = strings.TrimSpace(email); email != "" {
		sum := md5.Sum([]byte(strings.ToLower(email)))
		return append(ids, hex.EncodeToString(sum[:]))
	}
	return ids
}

func isMemberID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
