package mcsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"reflect"
	"slices"
	"strings"
)

// Disagreement is a member whose record in the target is missing or differs
// from what the mapping makes of the member as Mailchimp holds it now.
type Disagreement struct {
	ID        string
	Want, Got map[string]any // Got is nil when the target lacks the record
}

// Agreement compares the target with a list: every member of the list,
// archived ones included, must be in the target as record(member) says.
// record receives the member as the members endpoint would serve it,
// decoded with UseNumber. Records the target holds for members deleted
// permanently are not counted: the API never shows a deleted member, so no
// sync can know of the deletion. Mirror is the strict check, which counts
// them. With a composite TargetOptions.Key, a member's record is found by
// the key fields of what record makes of it, so one target may hold
// several lists.
func Agreement(sim *Mailchimp, listID string, target *Target, record func(member map[string]any) (map[string]any, error)) (checked int, bad []Disagreement, err error) {
	records := target.Records()
	composite := len(target.opts.Key) > 1
	for _, m := range sim.Members(listID) {
		doc, err := memberDoc(m)
		if err != nil {
			return checked, bad, err
		}
		want, err := record(doc)
		if err != nil {
			return checked, bad, fmt.Errorf("member %s: %w", m.ID, err)
		}
		checked++
		key := m.ID
		if composite {
			key = target.keyOf(want)
		}
		if got := records[key]; !reflect.DeepEqual(want, got) {
			bad = append(bad, Disagreement{ID: m.ID, Want: want, Got: got})
		}
	}
	return checked, bad, nil
}

// memberDoc is m as the members endpoint serves it, decoded with UseNumber.
func memberDoc(m Member) (map[string]any, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	return doc, decodeNumbers(b, &doc)
}

// MirrorOptions describes what one connection's target should hold.
type MirrorOptions struct {
	// Record maps a member, as the members endpoint would serve it (decoded
	// with UseNumber), to the record the target should hold. Required. The
	// record is compared with the target's as JSON values: numbers by
	// value, whatever Go type Record gives them.
	Record func(member map[string]any) (map[string]any, error)
	// Statuses are the statuses the connection syncs: its live members are
	// the list's members in one of them. Empty means every status,
	// archived included.
	Statuses []string
	// Tombstone is what a tombstone record holds besides its id, for a
	// connection that sends deletes as tombstone upserts: a record whose
	// keys are exactly IDKey and Tombstone's keys, with Tombstone's values
	// (compared as JSON values: numbers by value), is a tombstone. Nil means deletes remove records,
	// so no record is a tombstone.
	Tombstone map[string]any
	// IDKey is the record field that holds the record's id; "" means "id",
	// the field the target simulator keys its records by.
	IDKey string
	// ListIDKey, when set, is the record field that names the record's
	// audience, for a target that several audiences share (a composite
	// TargetOptions.Key such as id + list_id): only the records whose
	// ListIDKey is listID are this connection's, and the others are not
	// looked at. A tombstone may then carry ListIDKey too.
	ListIDKey string
}

// MirrorReport is what Mirror found. Every record in the target is exactly
// one of: a live member's record (right or in Wrong), a tombstone, or
// stale. OK says whether the target is a strict mirror.
type MirrorReport struct {
	Live       int // live members of the connection, all checked
	Records    int // records in the target
	Tombstones int // tombstone records, of ids that are not live members
	Stale      int // records of ids that are not live members and not tombstones
	// Wrong lists the live members whose record is missing (Got nil) or
	// differs (a tombstone in place of a live member's record included),
	// by id.
	Wrong []Disagreement
	// StaleRecords are the Stale records, by id: members deleted for good,
	// moved to another address or filtered out, whose record stayed.
	StaleRecords []StaleRecord
}

// StaleRecord is a record the target should no longer hold.
type StaleRecord struct {
	ID     string
	Record map[string]any
}

// OK reports whether every live member's record is right and no record is
// stale.
func (r MirrorReport) OK() bool { return len(r.Wrong) == 0 && r.Stale == 0 }

// String summarises the report, with a few ids of each kind of problem.
func (r MirrorReport) String() string {
	s := fmt.Sprintf("%d live members, %d records (%d tombstones, %d stale), %d live members missing or wrong",
		r.Live, r.Records, r.Tombstones, r.Stale, len(r.Wrong))
	const show = 3
	if len(r.Wrong) > 0 {
		var ids []string
		for _, d := range r.Wrong[:min(show, len(r.Wrong))] {
			ids = append(ids, d.ID)
		}
		s += "; wrong: " + strings.Join(ids, ", ")
	}
	if len(r.StaleRecords) > 0 {
		var ids []string
		for _, st := range r.StaleRecords[:min(show, len(r.StaleRecords))] {
			ids = append(ids, st.ID)
		}
		s += "; stale: " + strings.Join(ids, ", ")
	}
	return s
}

// Mirror is the strict check of a connection's target: every live member's
// record is in it as opts.Record says, and it holds no record of anyone
// else (deleted for good, moved to another address, filtered out by
// status) other than tombstones. It expects the target to hold this one
// connection's records. The error is for a bad call (no Record, an unknown
// status, a record without a string id), never for what the target holds.
func Mirror(sim *Mailchimp, listID string, target *Target, opts MirrorOptions) (MirrorReport, error) {
	var rep MirrorReport
	if opts.Record == nil {
		return rep, errors.New("mcsim: MirrorOptions.Record is nil")
	}
	if _, err := sim.list(listID); err != nil {
		return rep, err
	}
	idKey := opts.IDKey
	if idKey == "" {
		idKey = "id"
	}
	statuses := make(map[string]bool, len(opts.Statuses))
	for _, st := range opts.Statuses {
		if parseStatus(st) == codeInvalid {
			return rep, fmt.Errorf("mcsim: MirrorOptions.Statuses: unknown status %q", st)
		}
		statuses[st] = true
	}
	var tombstone map[string]any
	if opts.Tombstone != nil {
		var err error
		if tombstone, err = asJSON(opts.Tombstone); err != nil {
			return rep, fmt.Errorf("mcsim: MirrorOptions.Tombstone: %w", err)
		}
		delete(tombstone, idKey)
	}

	// The target's records by the id they carry under idKey; one without
	// a string id there cannot be a live member's, so it is stale.
	stored := target.Records()
	if opts.ListIDKey != "" {
		maps.DeleteFunc(stored, func(_ string, rec map[string]any) bool { return rec[opts.ListIDKey] != listID })
		delete(tombstone, opts.ListIDKey)
	}
	rep.Records = len(stored)
	byID := make(map[string]map[string]any, len(stored))
	for _, key := range slices.Sorted(maps.Keys(stored)) {
		rec := stored[key]
		id, ok := rec[idKey].(string)
		if _, dup := byID[id]; !ok || dup {
			rep.StaleRecords = append(rep.StaleRecords, StaleRecord{ID: key, Record: rec})
			continue
		}
		byID[id] = rec
	}

	live := make(map[string]bool)
	for _, m := range sim.Members(listID) {
		if len(statuses) > 0 && !statuses[m.Status] {
			continue
		}
		doc, err := memberDoc(m)
		if err != nil {
			return rep, err
		}
		want, err := opts.Record(doc)
		if err != nil {
			return rep, fmt.Errorf("member %s: %w", m.ID, err)
		}
		if want, err = asJSON(want); err != nil {
			return rep, fmt.Errorf("member %s: its record: %w", m.ID, err)
		}
		id, ok := want[idKey].(string)
		if !ok {
			return rep, fmt.Errorf("member %s: its record has no string %q", m.ID, idKey)
		}
		rep.Live++
		live[id] = true
		if got, ok := byID[id]; !ok || !jsonEqual(want, got) {
			rep.Wrong = append(rep.Wrong, Disagreement{ID: id, Want: want, Got: got})
		}
	}
	for id, rec := range byID {
		switch {
		case live[id]:
		case tombstone != nil && isTombstone(rec, idKey, opts.ListIDKey, tombstone):
			rep.Tombstones++
		default:
			rep.StaleRecords = append(rep.StaleRecords, StaleRecord{ID: id, Record: rec})
		}
	}
	slices.SortFunc(rep.Wrong, func(a, b Disagreement) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(rep.StaleRecords, func(a, b StaleRecord) int { return strings.Compare(a.ID, b.ID) })
	rep.Stale = len(rep.StaleRecords)
	return rep, nil
}

// asJSON is v as the target holds records: encoded, then decoded with
// numbers as json.Number.
func asJSON(v map[string]any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, decodeNumbers(b, &out)
}

// isTombstone reports whether rec holds exactly idKey and tombstone's keys,
// with tombstone's values, and listIDKey when that is set.
func isTombstone(rec map[string]any, idKey, listIDKey string, tombstone map[string]any) bool {
	want := len(tombstone) + 1
	if _, ok := rec[listIDKey]; ok && listIDKey != "" {
		want++
	}
	if _, ok := rec[idKey]; !ok || len(rec) != want {
		return false
	}
	for k, v := range tombstone {
		got, ok := rec[k]
		if !ok || !jsonEqual(got, v) {
			return false
		}
	}
	return true
}

// jsonEqual compares decoded JSON values, numbers by value (1 and 1.0 are
// the same number).
func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		x, okA := new(big.Float).SetString(a.String())
		y, okB := new(big.Float).SetString(b.String())
		return okA && okB && x.Cmp(y) == 0
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		return ok && slices.EqualFunc(a, b, jsonEqual)
	}
	return reflect.DeepEqual(a, b)
}
