package mcsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Rules by which the target refuses what it is sent, as a customer's API
// refuses records it finds invalid. A real API refuses the whole batch when
// one record is bad: nothing of it is applied, and the answer names the
// record. The target does the same, so the engine's tests can watch it split
// a refused batch to find the records refused on their own (issue 11).
//
// A record is refused when its id is in the refused-id set (RefuseIDs) or
// the refuse rule (SetRefuseRule, RefuseAll) gives a reason. Every record
// goes through both: upserts, tombstones (they are records like any other),
// and the record {"id": id} that stands for a DELETE of id or an Apply
// delete. A refused POST or DELETE is answered with the refuse status (422
// unless SetRefuseStatus says otherwise) and a body like
//
//	{"error":"invalid record","index":3,"id":"abc","reason":"no email"}
//
// where index is the refused record's position in the POSTed array (in
// Apply, the operation's position in the batch; a DELETE has none) and the
// record is the first one refused. SetMaxBatch refuses batches for their
// size instead (413). The rules are judged after an injected failure
// (FailNext, SetFailRate), which answers first, and after the batch is
// parsed, so a malformed batch is still a 400 that the rules never see.

// RefuseRule judges one record, decoded as Records returns it (numbers as
// json.Number): it returns "" to accept the record, or the reason the
// target gives for refusing it. A rule is called without the target's lock
// held, possibly from several requests at once, so it must be safe for
// concurrent use; it may call the Target's methods. The record is the
// rule's own copy.
type RefuseRule func(record map[string]any) (reason string)

// RefusedIDReason is the reason given for a record refused by RefuseIDs.
const RefusedIDReason = "refused id"

// refuseAllReason is RefuseAll's reason when it is given none.
const refuseAllReason = "record refused"

// SetRefuseRule makes the target refuse every record for which rule gives
// a reason. nil removes the rule; the refused-id set stays.
func (t *Target) SetRefuseRule(rule RefuseRule) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refuseRule = rule
}

// RefuseAll makes the target refuse every record with reason ("record
// refused" if reason is ""): every POST, DELETE and Apply with a record in
// it is refused. It replaces the rule of SetRefuseRule; SetRefuseRule(nil)
// or AcceptAll ends it. A POST of an empty array is still accepted.
func (t *Target) RefuseAll(reason string) {
	if reason == "" {
		reason = refuseAllReason
	}
	t.SetRefuseRule(func(map[string]any) string { return reason })
}

// RefuseIDs adds ids to the refused-id set: the records with these ids
// (their "id" key, or the first field of TargetOptions.Key), and DELETEs of them, are refused with RefusedIDReason
// until AcceptIDs or AcceptAll takes them out. Tombstones of these ids are
// refused too; a test that wants to refuse only upserts can use a
// SetRefuseRule rule that looks at the record's other fields.
func (t *Target) RefuseIDs(ids ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refusedIDs == nil {
		t.refusedIDs = make(map[string]bool, len(ids))
	}
	for _, id := range ids {
		t.refusedIDs[id] = true
	}
}

// AcceptIDs takes ids out of the refused-id set, as if the customer had
// fixed their records; ids not in it are ignored. The rule of
// SetRefuseRule may still refuse them.
func (t *Target) AcceptIDs(ids ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		delete(t.refusedIDs, id)
	}
}

// AcceptAll removes the refuse rule and empties the refused-id set. The
// refuse status, SetMaxBatch and the injected failures stay as they are.
func (t *Target) AcceptAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refuseRule = nil
	t.refusedIDs = nil
}

// SetRefuseStatus sets the status of a refusal by the rules: 422 (the
// default, also set by 0) or 400 are what the engine treats as a refusal
// of records; any other 4xx but 413 lets a test see what it does with a
// refusal it does not know. It panics on anything else.
func (t *Target) SetRefuseStatus(status int) {
	if status == 0 {
		status = http.StatusUnprocessableEntity
	}
	if status < 400 || status > 499 || status == http.StatusRequestEntityTooLarge {
		panic(fmt.Sprintf("mcsim: SetRefuseStatus(%d): want a 4xx other than 413", status))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refuseStatus = status
}

// SetMaxBatch makes the target answer 413, applying nothing, to a POST of
// more than n records, and to an Apply of more than n operations (its
// deletes included, as tombstones would be in a POST). A DELETE is one
// record and never too large. 0 or less removes the limit.
func (t *Target) SetMaxBatch(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.maxBatch = max(n, 0)
}

// tooLarge says whether a batch of n records or operations is over
// SetMaxBatch's limit, and the limit.
func (t *Target) tooLarge(n int) (limit int, over bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.maxBatch, t.maxBatch > 0 && n > t.maxBatch
}

// refusal is the first record of a request that the rules refused.
type refusal struct {
	status int
	index  int // in the batch; -1 for a DELETE
	id     string
	reason string
}

// body is the refusal's JSON answer.
func (r refusal) body() string {
	var index *int
	if r.index >= 0 {
		index = &r.index
	}
	b, _ := json.Marshal(struct {
		Error  string `json:"error"`
		Index  *int   `json:"index,omitempty"`
		ID     string `json:"id"`
		Reason string `json:"reason"`
	}{"invalid record", index, r.id, r.reason})
	return string(b)
}

// judge returns the first of recs the rules refuse. A record with a nil
// raw stands for the delete of its id, judged as the record {"id": id}.
func (t *Target) judge(recs []batchRecord) (refusal, bool) {
	t.mu.Lock()
	rule, status := t.refuseRule, t.refuseStatus
	first := len(recs) // the first record of the refused-id set
	if len(t.refusedIDs) > 0 {
		for i, rec := range recs {
			if t.refusedIDs[rec.id] {
				first = i
				break
			}
		}
	}
	t.mu.Unlock()
	if status == 0 {
		status = http.StatusUnprocessableEntity
	}
	if rule != nil {
		// Outside the lock: the rule is the test's code, and may be slow or
		// ask the target something.
		for i, rec := range recs[:first] {
			if reason := rule(t.decodeForRule(rec)); reason != "" {
				return refusal{status: status, index: i, id: rec.id, reason: reason}, true
			}
		}
	}
	if first < len(recs) {
		return refusal{status: status, index: first, id: recs[first].id, reason: RefusedIDReason}, true
	}
	return refusal{}, false
}

// decodeForRule decodes a record (already validated as an object) for a
// RefuseRule, or makes the record of its key fields ({"id": id}) for a
// delete.
func (t *Target) decodeForRule(rec batchRecord) map[string]any {
	if rec.raw == nil {
		out := make(map[string]any, len(rec.key))
		for f, v := range rec.key {
			out[t.opts.Key[f]] = v
		}
		return out
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(rec.raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		panic("mcsim: a record validated on receipt does not decode: " + err.Error())
	}
	return out
}

// refuse answers a request the rules refused, counting it in Refused.
func (t *Target) refuse(w http.ResponseWriter, r refusal) {
	t.mu.Lock()
	t.stats.Refused++
	t.mu.Unlock()
	t.reply(w, r.status, r.body())
}

// replyTooLarge answers 413 to a batch of n records over the limit,
// counting it in TooLarge.
func (t *Target) replyTooLarge(w http.ResponseWriter, n, limit int) {
	t.mu.Lock()
	t.stats.TooLarge++
	t.mu.Unlock()
	t.reply(w, http.StatusRequestEntityTooLarge, tooLargeBody(n, limit))
}

func tooLargeBody(n, limit int) string {
	return `{"error":"batch too large","records":` + strconv.Itoa(n) + `,"max":` + strconv.Itoa(limit) + `}`
}
