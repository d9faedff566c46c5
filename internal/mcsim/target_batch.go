package mcsim

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// A POSTed batch: a JSON array of objects, each with a string "id".

type batchRecord struct {
	id  string
	raw json.RawMessage
}

// parseBatch validates a whole batch before anything is stored, so a bad
// record rejects the request and leaves the target as it was.
func parseBatch(body []byte) ([]batchRecord, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("body must be a JSON array of objects: %v", err)
	}
	if items == nil {
		return nil, fmt.Errorf("body must be a JSON array of objects, got null")
	}
	out := make([]batchRecord, 0, len(items))
	for i, raw := range items {
		id, isObject := recordID(raw)
		if !isObject {
			return nil, fmt.Errorf("record %d is not a JSON object", i)
		}
		if id == "" {
			return nil, fmt.Errorf("record %d has no string id", i)
		}
		out = append(out, batchRecord{id: id, raw: raw})
	}
	return out, nil
}

// recordID finds the string "id" at the top of raw, a JSON value already
// known to be valid, and says whether raw is an object. The last "id" wins,
// as it does when the object is decoded into a map; a missing, empty or
// non-string id is "". It reads one pass over raw instead of decoding it
// into a map: the target simulator shares the benchmark machine's cores
// with the sync it measures, so its own cost is kept down.
func recordID(raw []byte) (id string, isObject bool) {
	i := skipJSONSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return "", false
	}
	i++
	for {
		i = skipJSONSpace(raw, i)
		if i >= len(raw) || raw[i] == '}' {
			return id, true
		}
		if raw[i] == ',' {
			i = skipJSONSpace(raw, i+1)
		}
		keyEnd := skipJSONValue(raw, i)
		key := raw[i:keyEnd]
		i = skipJSONSpace(raw, keyEnd)
		i = skipJSONSpace(raw, i+1) // the colon
		valueEnd := skipJSONValue(raw, i)
		if jsonStringIs(key, "id") {
			id = ""
			if raw[i] == '"' {
				_ = json.Unmarshal(raw[i:valueEnd], &id)
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
