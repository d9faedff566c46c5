package mcsim

import "fmt"

// churn applies n random mutations with the list's seeded randomness, so a
// test that churns the same way twice sees the same members touched. The mix
// follows what an active audience does: mostly profile edits, some
// unsubscribes, archives and signups, a few address changes and permanent
// deletions. Webhooks hear of signups, unsubscribes and edits as made by
// the subscribers (source user), of the rest as made by an admin. It returns the ids touched, each once; an address change
// touches two (the old id and the new).
func (l *list) churn(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var touched []string
	seen := make(map[string]bool, n)
	note := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			touched = append(touched, id)
		}
	}
	for range n {
		id, movedTo := l.churnOnceLocked()
		note(id)
		note(movedTo)
	}
	return touched
}

type churnAction int

const (
	churnEdit churnAction = iota
	churnUnsubscribe
	churnArchive
	churnAdd
	churnMove // an address change: a new id for the same contact
	churnDelete
)

func (l *list) pickChurnAction() churnAction {
	switch p := l.gen.rng.IntN(100); {
	case p < 66:
		return churnEdit
	case p < 76:
		return churnUnsubscribe
	case p < 82:
		return churnArchive
	case p < 91:
		return churnAdd
	case p < 95:
		return churnMove
	default:
		return churnDelete
	}
}

// churnOnceLocked makes one mutation and returns the id it touched ("" if
// none) and, for an address change, the member's new id. l.mu must be held
// for writing.
func (l *list) churnOnceLocked() (id, movedTo string) {
	action := l.pickChurnAction()
	if len(l.entries) == 0 {
		action = churnAdd
	}
	if action == churnAdd {
		m := l.gen.member(l.now())
		m.Status = StatusSubscribed
		id, err := l.addLocked(m, sourceUser)
		if err != nil {
			return "", "" // the address was taken by a member added by hand
		}
		return id, ""
	}

	i := l.gen.rng.IntN(len(l.entries))
	id = l.entries[i].m.ID
	status := l.entries[i].m.Status
	switch {
	case action == churnDelete:
		_ = l.removeLocked(id, sourceAdmin)
		return id, ""
	case action == churnMove:
		email := l.gen.newAddress()
		err := l.changeAtLocked(i, func(m *Member) { m.EmailAddress = email }, sourceAdmin)
		if err == nil {
			return id, MemberID(email)
		}
		// The address was taken by a member added by hand: an edit instead.
		l.mustChange(i, l.randomEdit(), sourceUser)
	case action == churnUnsubscribe && status == StatusSubscribed:
		l.mustChange(i, func(m *Member) { m.Status = StatusUnsubscribed }, sourceUser)
	case action == churnArchive && status != StatusArchived:
		l.mustChange(i, func(m *Member) { m.Status = StatusArchived }, sourceAdmin)
	default:
		l.mustChange(i, l.randomEdit(), sourceUser)
	}
	return id, ""
}

// randomEdit returns a merge-field edit, the most common change in a real
// audience. Its randomness is drawn now, so the sequence stays deterministic.
func (l *list) randomEdit() func(*Member) {
	rng := l.gen.rng
	switch rng.IntN(4) {
	case 0:
		first := firstNames[rng.IntN(len(firstNames))].text
		return func(m *Member) {
			m.MergeFields["FNAME"] = first
			m.FullName = fullName(m)
		}
	case 1:
		last := lastNames[rng.IntN(len(lastNames))].text
		return func(m *Member) {
			m.MergeFields["LNAME"] = last
			m.FullName = fullName(m)
		}
	case 2:
		phone := fmt.Sprintf("+1 555-01%02d", rng.IntN(100))
		return func(m *Member) { m.MergeFields["PHONE"] = phone }
	default:
		score := rng.IntN(101)
		return func(m *Member) { m.MergeFields["SCORE"] = score }
	}
}

func fullName(m *Member) string {
	first, _ := m.MergeFields["FNAME"].(string)
	last, _ := m.MergeFields["LNAME"].(string)
	switch {
	case first == "":
		return last
	case last == "":
		return first
	}
	return first + " " + last
}

// mustChange applies an edit that cannot fail validation (it never touches
// the email or sets an unknown status).
func (l *list) mustChange(i int, fn func(*Member), src eventSource) {
	if err := l.changeAtLocked(i, fn, src); err != nil {
		panic("mcsim: churn edit failed: " + err.Error())
	}
}
