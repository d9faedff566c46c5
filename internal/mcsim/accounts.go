package mcsim

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Accounts, OAuth access tokens and the audiences each credential sees.
//
// A credential is an API key (AddAPIKey) or an access token
// (AddAccessToken); each has its own MaxConnsPerKey slots, a key and a
// token with the same text included. Grant (or AddAccountList) makes lists
// a credential's own account: GET /lists then answers those lists only,
// and every other list's routes answer 404, as another account's audience
// does. A credential that owns no list sees every list, which is what the
// simulator did before accounts existed.

// MetadataPath is where the simulator serves Mailchimp's OAuth metadata
// endpoint (login.mailchimp.com/oauth2/metadata), outside /3.0.
const MetadataPath = "/oauth2/metadata"

// AddAccessToken accepts an OAuth access token: "Authorization: Bearer
// <token>" on every API route, and "Authorization: OAuth <token>" at
// MetadataPath. A revoked token is accepted again.
func (s *Mailchimp) AddAccessToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts, ok := s.tokens[token]; ok {
		ts.revoked = false
		return
	}
	s.tokens[token] = &keyState{}
}

// RevokeAccessToken makes the token fail from now on with 401, on the API
// routes (a problem document) and at MetadataPath, as when the account's
// owner disconnects the app. Requests already in flight finish.
func (s *Mailchimp) RevokeAccessToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts, ok := s.tokens[token]; ok {
		ts.revoked = true
	}
}

// Grant makes the lists part of credential's account (a key's or a
// token's, by its text). Lists need not exist yet.
func (s *Mailchimp) Grant(credential string, listIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	own := s.owned[credential]
	if own == nil {
		own = make(map[string]bool, len(listIDs))
		s.owned[credential] = own
	}
	for _, id := range listIDs {
		own[id] = true
	}
}

// AddAccountList creates a list as AddList does and grants it to
// credential.
func (s *Mailchimp) AddAccountList(credential, listID string, members int, seed int64) {
	s.AddList(listID, members, seed)
	s.Grant(credential, listID)
}

// RemoveList deletes an audience: its routes answer 404 and GET /lists no
// longer names it. Grants of it stay, so a list added again under the same
// id belongs to the same accounts.
func (s *Mailchimp) RemoveList(listID string) {
	s.listsMu.Lock()
	defer s.listsMu.Unlock()
	delete(s.lists, listID)
}

// sees reports whether credential may read listID: it owns the list, or
// owns none at all.
func (s *Mailchimp) sees(credential, listID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	own := s.owned[credential]
	return len(own) == 0 || own[listID]
}

// authenticate returns the credential of a request (Bearer token or Basic
// auth key) and its slots, if it is accepted.
func (s *Mailchimp) authenticate(r *http.Request) (string, *keyState, bool) {
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		ts, ok := s.tokenState(token)
		return token, ts, ok
	}
	_, key, ok := r.BasicAuth()
	if !ok || key == "" {
		return "", nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ks, known := s.keys[key]
	return key, ks, known
}

// tokenState returns a known, unrevoked token's slots.
func (s *Mailchimp) tokenState(token string) (*keyState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, ok := s.tokens[token]
	if !ok || ts.revoked || token == "" {
		return nil, false
	}
	return ts, true
}

// serveMetadata answers GET /oauth2/metadata as login.mailchimp.com does,
// with the simulator's own address as api_endpoint so that a client that
// follows it reaches the simulator. It takes no connection slot and no
// injected fault: it is another server than the API.
func (s *Mailchimp) serveMetadata(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.MetadataRequests++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"error":"method_not_allowed"}`))
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "OAuth ")
	if _, known := s.tokenState(token); !ok || !known {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_token"}`))
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	_, _ = w.Write(appendObject(nil, object{
		{"dc", "us1"},
		{"role", "owner"},
		{"accountname", "Simulated Account"},
		{"user_id", 1},
		{"login", object{{"email", "owner@example.com"}, {"login_id", 1}, {"login_name", "owner"}}},
		{"login_url", "https://login.mailchimp.com"},
		{"api_endpoint", scheme + "://" + r.Host},
	}, nil))
}

// serveLists answers GET /3.0/lists: the lists the credential sees, sorted
// by id, paged by count (default 10, at most MaxCount) and offset, trimmed
// by fields and exclude_fields (lists.id,lists.name,total_items).
func (s *Mailchimp) serveLists(w http.ResponseWriter, r *http.Request, credential string) {
	params := r.URL.Query()
	q, errs := parseMembersQuery(pagingOnly(params.Get("count"), params.Get("offset")), false)
	if len(errs) > 0 {
		s.writeProblem(w, http.StatusBadRequest, "Invalid Resource",
			"The resource submitted could not be validated. For field-specific details, see the 'errors' array.", errs)
		return
	}
	s.listsMu.RLock()
	var visible []*list
	for id, l := range s.lists {
		if s.sees(credential, id) {
			visible = append(visible, l)
		}
	}
	s.listsMu.RUnlock()
	slices.SortFunc(visible, func(a, b *list) int { return strings.Compare(a.id, b.id) })

	sel := parseFieldSelection(params.Get("fields"), params.Get("exclude_fields"))
	listSel, _ := sel.child("lists", false)
	_, withStats := listSel.child("stats", false)
	page := visible[min(q.offset, len(visible)):min(q.offset+q.count, len(visible))]
	items := make([]object, 0, len(page))
	for _, l := range page {
		items = append(items, listObject(l, withStats))
	}
	body := appendObject(nil, object{
		{"lists", items},
		{"total_items", len(visible)},
		{"constraints", object{{"may_create", true}, {"max_instances", 100000}, {"current_total_instances", len(visible)}}},
		{"_links", []object{}},
	}, sel)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// pagingOnly keeps only the paging parameters, which GET /lists shares
// with the members endpoint, for parseMembersQuery's checks.
func pagingOnly(count, offset string) map[string][]string {
	v := map[string][]string{}
	if count != "" {
		v["count"] = []string{count}
	}
	if offset != "" {
		v["offset"] = []string{offset}
	}
	return v
}
