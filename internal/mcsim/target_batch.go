package mcsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// A POSTed batch: a JSON array of objects, each with a string value for
// every field of the target's key ("id" unless TargetOptions.Key says
// otherwise).

type batchRecord struct {
	id  string   // the first key field's value: what the refusal rules name
	key []string // the key fields' values, in TargetOptions.Key's order
	raw json.RawMessage
}

// mapKey is the record's key in Target.records and Records: the key
// fields' values joined with keySep.
func (r batchRecord) mapKey() string { return strings.Join(r.key, keySep) }

// keySep joins the fields of a composite key in Records' map keys
// ("id|list_id"). Mailchimp's ids are hex, so none holds it.
const keySep = "|"

// parseBatch validates a whole batch before anything is stored, so a bad
// record rejects the request and leaves the target as it was. keyFields is
// the target's key.
func parseBatch(body []byte, keyFields []string) ([]batchRecord, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("body must be a JSON array of objects: %v", err)
	}
	if items == nil {
		return nil, fmt.Errorf("body must be a JSON array of objects, got null")
	}
	out := make([]batchRecord, 0, len(items))
	for i, raw := range items {
		key, isObject := recordKey(raw, keyFields)
		if !isObject {
			return nil, fmt.Errorf("record %d is not a JSON object", i)
		}
		for f, v := range key {
			if v == "" {
				return nil, fmt.Errorf("record %d has no string %s", i, keyFields[f])
			}
		}
		out = append(out, batchRecord{id: key[0], key: key, raw: raw})
	}
	return out, nil
}

// recordKey finds the string values of keyFields at the top of raw, a JSON
// value already known to be valid, and says whether raw is an object. The
// last occurrence of a field wins, as it does when the object is decoded
// into a map; a missing, empty or non-string value is "". It reads one
// pass over raw instead of decoding it into a map: the target simulator
// shares the benchmark machine's cores with the sync it measures, so its
// own cost is kept down.
func recordKey(raw []byte, keyFields []string) (key []string, isObject bool) {
	key = make([]string, len(keyFields))
	i := skipJSONSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return key, false
	}
	i++
	for {
		i = skipJSONSpace(raw, i)
		if i >= len(raw) || raw[i] == '}' {
			return key, true
		}
		if raw[i] == ',' {
			i = skipJSONSpace(raw, i+1)
		}
		keyEnd := skipJSONValue(raw, i)
		name := raw[i:keyEnd]
		i = skipJSONSpace(raw, keyEnd)
		i = skipJSONSpace(raw, i+1) // the colon
		valueEnd := skipJSONValue(raw, i)
		for f, field := range keyFields {
			if !jsonStringIs(name, field) {
				continue
			}
			key[f] = ""
			if raw[i] == '"' {
				_ = json.Unmarshal(raw[i:valueEnd], &key[f])
			}
		}
		i = valueEnd
	}
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipJSONValue returns the end of the valid JSON value starting at b[i].
func skipJSONValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing value
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i // the end of a number or literal
			}
		}
	}
	return i
}

// jsonStringIs reports whether the JSON string token tok decodes to s.
func jsonStringIs(tok []byte, s string) bool {
	if bytes.IndexByte(tok, '\\') < 0 {
		return len(tok) == len(s)+2 && string(tok[1:len(tok)-1]) == s
	}
	var decoded string
	return json.Unmarshal(tok, &decoded) == nil && decoded == s
}
