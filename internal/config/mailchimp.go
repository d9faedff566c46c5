package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"
)

// mailchimp checks the audience side of a connection; ids are its list_id
// sequence when isList (Load expands it after validation).
func (v *validator) mailchimp(p string, m Mailchimp, ids []string, isList bool) {
	v.credentials(p, m)
	if isList {
		v.listIDs(p+".list_id", ids)
	} else if msg := checkListID(m.ListID, true); msg != "" {
		v.add(p+".list_id", msg)
	}
	// Empty when there is no usable API key, which is reported above, or
	// for an access token whose data center is looked up at run time.
	if m.BaseURL != "" {
		if msg := checkHTTPURL(m.BaseURL); msg != "" {
			v.add(p+".base_url", msg)
		}
	}
	if m.MetadataURL != "" {
		if msg := checkMetadataURL(m.MetadataURL); msg != "" {
			v.add(p+".metadata_url", msg)
		}
	}
	if m.Settle < 0 {
		v.add(p+".settle", "must not be negative")
	}
	first := map[string]int{}
	for i, s := range m.Statuses {
		f := joinIndex(p+".statuses", i)
		if !slices.Contains(Statuses, s) {
			v.add(f, fmt.Sprintf("unknown status %q; want one of %s", s, strings.Join(Statuses, ", ")))
		} else if j, dup := first[s]; dup {
			v.add(f, fmt.Sprintf("duplicate of statuses[%d] %q", j, s))
		} else {
			first[s] = i
		}
	}
}

// credentials checks that exactly one of api_key and access_token is set,
// and dc, which only an access token takes. Neither value is ever quoted.
func (v *validator) credentials(p string, m Mailchimp) {
	key, token := m.APIKey.Reveal(), m.AccessToken.Reveal()
	switch {
	case key == "" && token == "":
		v.add(p+".api_key", "required (or access_token, for an account connected through OAuth)")
	case key != "" && token != "":
		v.add(p+".access_token", "must not be set with api_key: use one of the two "+
			"(write access_token: ~ or api_key: ~ in the connection to decline one from defaults)")
	case strings.ContainsFunc(key, unicode.IsSpace):
		v.add(p+".api_key", "must not contain spaces or line breaks")
	case key != "":
		if _, ok := datacenter(m.APIKey); !ok {
			v.add(p+".api_key", "must end in -<datacenter>, e.g. -us6")
		}
	case strings.ContainsFunc(token, unicode.IsSpace):
		v.add(p+".access_token", "must not contain spaces or line breaks")
	}
	switch {
	case m.DC == "":
	case key != "":
		v.add(p+".dc", "is only for an access_token: an API key's data center is its suffix after the last -; remove dc")
	case !validDC(m.DC):
		v.add(p+".dc", fmt.Sprintf("must be a data center, letters then digits such as us6, got %q", m.DC))
	}
}

// checkListID returns what is wrong with one audience id, or "". An id goes
// into request paths, where / or ? would change the request, and into a
// sub-connection's name. AllLists is one only where allAllowed.
func checkListID(id string, allAllowed bool) string {
	switch {
	case id == "":
		return "required"
	case id == AllLists && allAllowed:
		return ""
	case id == AllLists:
		return `"*" stands for every audience of the account and cannot be one of a list: write list_id: "*" alone, or list the ids`
	case len(id) > MaxListIDLength:
		return fmt.Sprintf("must be at most %d characters", MaxListIDLength)
	case !isWord(id):
		return "must use only letters, digits, _ and -"
	}
	return ""
}

// listIDs checks a list_id sequence: each entry an id, each id once.
func (v *validator) listIDs(p string, ids []string) {
	if len(ids) == 0 {
		v.add(p, `must list at least one audience id, e.g. [a1b2c3d4e5, f6a7b8c9d0], or be "*" for every audience of the account`)
		return
	}
	first := map[string]int{}
	for k, id := range ids {
		f := joinIndex(p, k)
		if msg := checkListID(id, false); msg != "" {
			v.add(f, msg)
		} else if j, dup := first[id]; dup {
			v.add(f, fmt.Sprintf("repeats list_id[%d] %q: list each audience once", j, id))
		} else {
			first[id] = k
		}
	}
}

// checkMetadataURL returns what is wrong with mailchimp.metadata_url, or
// "". User info is refused: the request carries the access token, and a
// second credential in a URL that may be printed is one too many.
func checkMetadataURL(s string) string {
	if msg := checkHTTPURL(s); msg != "" {
		return msg
	}
	if u, _ := url.Parse(s); u.User != nil {
		return "must not hold a user name or password"
	}
	return ""
}
