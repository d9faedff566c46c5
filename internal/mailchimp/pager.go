package mailchimp

import "context"

// Pager walks a members query page by page with offsets:
//
//	p := c.Pager(listID, q)
//	for p.Next(ctx) {
//		use(p.Page())
//	}
//	if err := p.Err(); err != nil { ... }
//
// Offsets advance by the number of members received, and paging stops on
// an empty page or once the offset reaches the latest total_items, so a
// finished walk costs no extra empty request. Offset paging over a set
// that shrinks meanwhile skips members; detecting that is the sync
// engine's job (it re-reads total_items), not the pager's.
type Pager struct {
	c      *Client
	listID string
	q      MembersQuery
	page   *MembersPage
	err    error
	done   bool
}

// Pager returns a Pager for q starting at q.Offset. A zero q.Count means
// MaxPageSize rather than the API's default of 10.
func (c *Client) Pager(listID string, q MembersQuery) *Pager {
	if q.Count <= 0 {
		q.Count = MaxPageSize
	}
	return &Pager{c: c, listID: listID, q: q}
}

// Next fetches the next page; it returns false at the end or on error.
func (p *Pager) Next(ctx context.Context) bool {
	if p.done || p.err != nil {
		return false
	}
	page, err := p.c.Members(ctx, p.listID, p.q)
	if err != nil {
		p.err, p.page = err, nil
		return false
	}
	if len(page.Members) == 0 {
		p.done, p.page = true, nil
		return false
	}
	p.page = page
	p.q.Offset += len(page.Members)
	if p.q.Offset >= page.TotalItems {
		p.done = true
	}
	return true
}

// Page is the page fetched by the last successful Next.
func (p *Pager) Page() *MembersPage { return p.page }

// Offset is the offset the next page would be fetched from.
func (p *Pager) Offset() int { return p.q.Offset }

// Err is the error that stopped the walk, if any.
func (p *Pager) Err() error { return p.err }
