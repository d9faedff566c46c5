package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// offer checks that page continues the chain and accepts it, bridging the
// gap first when it does not. It reports whether the view is complete.
func (v *viewPager) offer(ctx context.Context, page *mailchimp.MembersPage) (bool, error) {
	for bridges := 0; ; bridges++ {
		if s, ok := v.tieAtBoundary(page); ok {
			// page starts in the second the chain ends in. Once that
			// second is covered on its own, page continues the chain:
			// it holds every member of its range after s, whatever the
			// order among ties. No new pass, so the pages in flight are
			// not thrown away.
			if err := v.coverTieGroup(ctx, s); err != nil {
				return false, err
			}
			return v.accept(ctx, page)
		}
		if v.connects(page) {
			return v.accept(ctx, page)
		}
		if bridges == maxBridges {
			return false, errChainBroken
		}
		b, err := v.bridge(ctx, page.Offset)
		if err != nil {
			return false, err
		}
		if s, ok := v.tieAtBoundary(b); ok {
			if err := v.coverTieGroup(ctx, s); err != nil {
				return false, err
			}
		}
		if done, err := v.accept(ctx, b); err != nil || done {
			return done, err
		}
	}
}

// connects reports whether page continues the chain: the first page of a
// pass must start at offset 0, and every later one must share a member
// with the page accepted before it.
func (v *viewPager) connects(page *mailchimp.MembersPage) bool {
	if v.chain == nil {
		return page.Offset == 0
	}
	for _, m := range page.Members {
		if _, ok := v.chain.ids[m.ID()]; ok {
			return true
		}
	}
	return false
}

// bridge finds a page between the last accepted page and offset hi that
// shares a member with the last accepted page, halving the distance each
// time. Removals only ever shift members towards lower offsets, so a closer
// offset is more likely to overlap.
func (v *viewPager) bridge(ctx context.Context, hi int) (*mailchimp.MembersPage, error) {
	lo := v.chain.offset
	for {
		m := lo + (hi-lo)/2
		page, err := v.fetch(ctx, m)
		if err != nil {
			return nil, &pageError{view: v.view.name, offset: m, err: err}
		}
		if v.connects(page) {
			v.attempt.logger.Debug("bridged a gap between pages", "view", v.view.name, "offset", m)
			return page, nil
		}
		if m == lo {
			return nil, errChainBroken
		}
		hi = m
	}
}

// accept hands the page's new members to delivery and makes it the last
// page of the chain. A short page means the window has been paged to its
// end.
func (v *viewPager) accept(ctx context.Context, page *mailchimp.MembersPage) (bool, error) {
	accepted, fresh, err := v.sift(page)
	if err != nil {
		return false, err
	}
	v.attempt.read.Add(int64(len(page.Members)))
	if len(page.Members) > 0 {
		position := v.claim(accepted.lastLC)
		if err := v.handOver(ctx, position, fresh); err != nil {
			return false, err
		}
		v.lastLC = position
	}
	v.chain = accepted
	v.dedupe = accepted
	v.attempt.reportProgress()
	return len(page.Members) < v.attempt.engine.PageSize, nil
}

// sift reads a page: every member's id for the overlap proof, and the
// members to deliver, those of [since, before) not handed over already.
func (v *viewPager) sift(page *mailchimp.MembersPage) (*acceptedPage, []mailchimp.Member, error) {
	accepted := &acceptedPage{
		offset:     page.Offset,
		ids:        make(map[string]struct{}, len(page.Members)),
		handedOver: make(map[string]struct{}, len(page.Members)),
	}
	fresh := make([]mailchimp.Member, 0, len(page.Members))
	for _, m := range page.Members {
		id := m.ID()
		if id == "" {
			return nil, nil, fmt.Errorf("view %s, offset %d: a member has no id", v.view.name, page.Offset)
		}
		accepted.ids[id] = struct{}{}
		lc, err := m.LastChanged()
		if err != nil {
			return nil, nil, fmt.Errorf("view %s, offset %d: member %s: %w", v.view.name, page.Offset, id, err)
		}
		accepted.lastLC = lc
		if v.dedupe != nil {
			if _, dup := v.dedupe.handedOver[id]; dup {
				accepted.handedOver[id] = struct{}{}
				continue
			}
		}
		if !v.tieDone.IsZero() && !lc.After(v.tieDone) && !lc.Before(v.since) {
			accepted.handedOver[id] = struct{}{} // by the tie group's own pager
			continue
		}
		// The query looks back one second (since may be inclusive or
		// exclusive) and before may be inclusive: keep [since, before).
		if lc.Before(v.since) || !lc.Before(v.before) {
			continue
		}
		accepted.handedOver[id] = struct{}{}
		fresh = append(fresh, m)
	}
	return accepted, fresh, nil
}

// claim is the position a page lets the view's checkpoint claim once its
// records are acknowledged: every member before it has been handed over.
// last is the last_changed of the page's last member.
func (v *viewPager) claim(last time.Time) time.Time {
	position := last
	if v.natural {
		// In natural order last_changed says nothing about what came
		// before: until the whole group is paged, claim only what
		// precedes it. (This also keeps a restart at the group start.)
		position = v.since
	}
	if end := v.tieDone.Add(time.Second); !v.tieDone.IsZero() && position.Before(end) {
		position = end
	}
	if position.After(v.before) {
		position = v.before
	}
	if position.Before(v.since) {
		position = v.since
	}
	return position
}

// handOver maps the fresh members of a page and sends them to delivery, as
// one page of the view's progress that claims position.
func (v *viewPager) handOver(ctx context.Context, position time.Time, fresh []mailchimp.Member) error {
	ack := v.progress.open(position, len(fresh))
	for _, m := range fresh {
		id, err := state.ParseMemberID(m.ID())
		if err != nil {
			return fmt.Errorf("mailchimp sent a member whose id is not an MD5: %w", err)
		}
		body, err := v.attempt.job.Mapping.Append(nil, m)
		if err != nil {
			return err
		}
		if err := v.attempt.delivery.send(ctx, change{op: target.Upsert(body), member: id, page: ack}); err != nil {
			return err
		}
	}
	v.progress.seal(ack)
	return nil
}

// tieAtBoundary reports whether page starts in the same last_changed
// second as the last accepted page ends: a tie group straddles the page
// boundary. Mailchimp does not promise any order among members that share
// a last_changed value, and a database may order them differently from one
// query to the next; then two pages can overlap and still miss a member of
// that group. Only such straddling groups are at risk: every member with a
// last_changed strictly inside a page's range sorts inside the page,
// whatever the order of ties.
func (v *viewPager) tieAtBoundary(page *mailchimp.MembersPage) (time.Time, bool) {
	if v.natural || v.chain == nil || len(page.Members) == 0 {
		return time.Time{}, false
	}
	first, err := page.Members[0].LastChanged()
	if err != nil || !first.Equal(v.chain.lastLC) {
		return time.Time{}, false
	}
	// A group outside [since, before) is the lookback second or the
	// window end: none of it is to be delivered in this window.
	if first.Before(v.since) || !first.Before(v.before) {
		return time.Time{}, false
	}
	return first, true
}

// coverTieGroup delivers every member whose last_changed is the second s,
// paging that one second in Mailchimp's natural order, which (unlike the
// order among ties) is stable, with the same overlap proof. Afterwards
// everything before s+1 has been handed over, and the page that started in
// s continues the chain (see offer).
func (v *viewPager) coverTieGroup(ctx context.Context, s time.Time) error {
	if !s.After(v.tieDone) {
		return nil // covered already
	}
	v.attempt.logger.Debug("paging a tie group on its own", "view", v.view.name, "last_changed", s)
	group := &viewPager{
		attempt: v.attempt, view: v.view, since: s, before: s.Add(time.Second), natural: true,
		progress: v.progress, dedupe: v.dedupe,
	}
	if err := group.page(ctx); err != nil {
		return err
	}
	// Every member stamped s has been handed over too. The outer dedupe
	// stays: the next page may share members after s with the chain's
	// last page.
	v.tieDone = s
	end := s.Add(time.Second)
	v.progress.seal(v.progress.open(end, 0))
	if end.After(v.lastLC) {
		v.lastLC = end
	}
	return nil
}
