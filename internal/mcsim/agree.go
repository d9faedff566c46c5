package mcsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
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
// sync can know of the deletion.
func Agreement(sim *Mailchimp, listID string, target *Target, record func(member map[string]any) (map[string]any, error)) (checked int, bad []Disagreement, err error) {
	records := target.Records()
	for _, m := range sim.Members(listID) {
		b, err := json.Marshal(m)
		if err != nil {
			return checked, bad, err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			return checked, bad, err
		}
		want, err := record(doc)
		if err != nil {
			return checked, bad, fmt.Errorf("member %s: %w", m.ID, err)
		}
		checked++
		if got := records[m.ID]; !reflect.DeepEqual(want, got) {
			bad = append(bad, Disagreement{ID: m.ID, Want: want, Got: got})
		}
	}
	return checked, bad, nil
}
