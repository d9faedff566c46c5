package mcsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
)

// Source answers the member calls of the Mailchimp client (Members and
// Member) in process, from the simulator's own lists, without HTTP. The
// sync engine's unit tests page through it: the same list model as the
// HTTP simulator, so churn per request, since/before inclusivity, unstable
// tie order, the connection limit and injected faults behave identically,
// at a fraction of the cost and with no network in between.
//
// What differs from the HTTP path is what the client would add: there are
// no retries, so an injected fault (or a request over the connection
// limit) fails its call with the *mailchimp.Error the client returns once
// its retries gave up. Options.Latency does not apply: answers are
// immediate. A Source is safe for concurrent use; like a client it counts
// its own requests (Stats), and the simulator's Stats count them too.
type Source struct {
	sim *Mailchimp
	key string

	mu    sync.Mutex
	stats mailchimp.Stats
}

// Source returns an in-process source that calls the API with apiKey. A
// key the simulator does not accept fails every call with 401, as over
// HTTP.
func (s *Mailchimp) Source(apiKey string) *Source {
	return &Source{sim: s, key: apiKey, stats: mailchimp.Stats{ByStatus: map[int]int64{}}}
}

// Stats counts the calls of this Source, by the status they would have
// had over HTTP (0 for a dropped connection).
func (src *Source) Stats() mailchimp.Stats {
	src.mu.Lock()
	defer src.mu.Unlock()
	st := src.stats
	st.ByStatus = maps.Clone(src.stats.ByStatus)
	return st
}

// call is one request through the simulator's front door (auth, the
// connection limit, a fault) to serve, which answers the endpoint. It
// counts the request in the simulator's Stats and the Source's.
func (src *Source) call(ctx context.Context, endpoint string, serve func() (status int, members int, body int64, err error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := src.sim
	kind := kindOf(http.MethodGet, endpoint)
	s.countRequest(kind)
	out := outcome{kind: kind, members: -1}
	var size int64
	release, status, err := src.front(endpoint, &out)
	if err == nil {
		status, out.members, size, err = serve()
		if out.fault { // a truncated body: served, then cut short
			out.members, size = -1, size/2
			status, err = faultError(endpoint, FaultTruncate)
		}
	}
	if release != nil {
		release()
	}
	s.count(status, size, &out)
	src.mu.Lock()
	src.stats.Requests++
	src.stats.ByStatus[status]++
	src.mu.Unlock()
	return err
}

// front is what ServeHTTP does before the endpoint: it returns a non-nil
// error, and the status it stands for, when the request ends there, and
// otherwise the release of the connection slot the endpoint holds.
func (src *Source) front(endpoint string, out *outcome) (release func(), status int, err error) {
	s := src.sim
	s.mu.Lock()
	ks, known := s.keys[src.key]
	s.mu.Unlock()
	if !known || src.key == "" {
		return nil, http.StatusUnauthorized, problemError(mailchimp.KindAuth, endpoint, http.StatusUnauthorized, "API Key Invalid",
			"Your API key may be invalid, or you've attempted to access the wrong datacenter.")
	}
	release, ok := s.acquire(ks)
	if !ok {
		out.limitRejected = true
		return nil, http.StatusTooManyRequests, problemError(mailchimp.KindRateLimited, endpoint, http.StatusTooManyRequests, "Too Many Requests",
			fmt.Sprintf("You have exceeded the limit of %d simultaneous connections.", s.opts.MaxConnsPerKey))
	}
	switch f := s.nextFault(); f {
	case FaultNone:
		return release, 0, nil
	case FaultTruncate:
		// Over HTTP the real answer is rendered (and the list churned)
		// before the body is cut: call does the same.
		out.fault = true
		return release, 0, nil
	default:
		release()
		out.fault = true
		status, err = faultError(endpoint, f)
		return nil, status, err
	}
}

// faultError is the error the client returns for fault f once it stops
// retrying, and the status the fault is counted under.
func faultError(endpoint string, f Fault) (int, error) {
	switch f {
	case FaultServerHTML:
		return http.StatusBadGateway, problemError(mailchimp.KindServer, endpoint, http.StatusBadGateway, "Bad Gateway", "")
	case FaultRateLimit:
		return http.StatusTooManyRequests, problemError(mailchimp.KindRateLimited, endpoint, http.StatusTooManyRequests, "Too Many Requests", "")
	case FaultForbiddenNoBody:
		return http.StatusForbidden, problemError(mailchimp.KindRateLimited, endpoint, http.StatusForbidden, "", "")
	case FaultDrop:
		return 0, &mailchimp.Error{Kind: mailchimp.KindTransport, Method: http.MethodGet, Endpoint: endpoint, Attempts: 1,
			Err: errors.New("connection closed before a response: EOF")}
	case FaultTruncate:
		return http.StatusOK, &mailchimp.Error{Kind: mailchimp.KindBadBody, Method: http.MethodGet, Endpoint: endpoint,
			Status: http.StatusOK, Title: "unreadable response body", Attempts: 1, Err: io.ErrUnexpectedEOF}
	}
	panic("mcsim: unknown fault " + f.String())
}

func problemError(kind mailchimp.Kind, endpoint string, status int, title, detail string) *mailchimp.Error {
	return &mailchimp.Error{Kind: kind, Method: http.MethodGet, Endpoint: endpoint, Status: status,
		Title: title, Detail: detail, Attempts: 1}
}

// Members answers one members query like GET /lists/{id}/members.
func (src *Source) Members(ctx context.Context, listID string, q mailchimp.MembersQuery) (*mailchimp.MembersPage, error) {
	if listID == "" {
		return nil, errors.New("mcsim: list id is empty")
	}
	endpoint := "/lists/" + url.PathEscape(listID) + "/members"
	var page *mailchimp.MembersPage
	err := src.call(ctx, endpoint, func() (int, int, int64, error) {
		s := src.sim
		l, err := s.list(listID)
		if err != nil || !s.sees(src.key, listID) {
			return http.StatusNotFound, -1, 0, notFoundError(endpoint)
		}
		params := q.Values()
		mq, errs := parseMembersQuery(params, s.opts.Inclusive)
		if len(errs) > 0 {
			e := problemError(mailchimp.KindInvalid, endpoint, http.StatusBadRequest, "Invalid Resource",
				"The resource submitted could not be validated. For field-specific details, see the 'errors' array.")
			for _, fe := range errs {
				e.FieldErrors = append(e.FieldErrors, mailchimp.FieldError{Field: fe.Field, Message: fe.Message})
			}
			return http.StatusBadRequest, -1, 0, e
		}
		members, total := s.membersPage(l, mq)
		sel := parseFieldSelection(params.Get("fields"), params.Get("exclude_fields"))
		body, _ := appendMembersBody(nil, l.id, members, total, sel, nil)
		// Decoded as the client decodes a response, so the caller sees
		// exactly the documents the HTTP path would give it.
		var doc struct {
			Members    []mailchimp.Member `json:"members"`
			ListID     string             `json:"list_id"`
			TotalItems int                `json:"total_items"`
		}
		if err := decodeNumbers(body, &doc); err != nil {
			return http.StatusInternalServerError, -1, 0, err
		}
		page = &mailchimp.MembersPage{ListID: doc.ListID, Offset: q.Offset, TotalItems: doc.TotalItems,
			Members: doc.Members, ServerTime: s.opts.Clock.Now().UTC().Truncate(time.Second)}
		if page.ListID == "" {
			page.ListID = listID
		}
		return http.StatusOK, len(members), int64(len(body)), nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// Member answers GET /lists/{id}/members/{subscriber_hash} as the client's
// Member does: fields in either form, archived members returned, and an
// error matching mailchimp.ErrMemberNotFound once the member is deleted.
func (src *Source) Member(ctx context.Context, listID, subscriberHash string, fields []string) (mailchimp.Member, error) {
	if listID == "" || subscriberHash == "" {
		return nil, errors.New("mcsim: list id or subscriber hash is empty")
	}
	endpoint := "/lists/" + url.PathEscape(listID) + "/members/" + url.PathEscape(subscriberHash)
	var member mailchimp.Member
	err := src.call(ctx, endpoint, func() (int, int, int64, error) {
		m, ok := src.sim.member(listID, subscriberHash)
		if !ok || !src.sim.sees(src.key, listID) {
			return http.StatusNotFound, -1, 0, fmt.Errorf("mcsim: GET %s: 404: %w", endpoint, mailchimp.ErrMemberNotFound)
		}
		var paths []string
		for _, f := range fields {
			if f = strings.TrimPrefix(f, "members."); f != "" && f != "members" && f != "total_items" {
				paths = append(paths, f)
			}
		}
		body := appendMember(nil, m, newMemberPlan(parseFieldSelection(strings.Join(paths, ","), "")))
		if err := decodeNumbers(body, &member); err != nil {
			return http.StatusInternalServerError, -1, 0, err
		}
		return http.StatusOK, -1, int64(len(body)), nil
	})
	if err != nil {
		return nil, err
	}
	return member, nil
}

func notFoundError(endpoint string) error {
	return problemError(mailchimp.KindNotFound, endpoint, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
}

// decodeNumbers decodes one JSON document with numbers kept as
// json.Number, as the client decodes responses.
func decodeNumbers(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	return dec.Decode(v)
}
