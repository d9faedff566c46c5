package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Field maps one output key to a member dot path.
type Field struct {
	Key  string
	Path string
}

// DefaultFields is the original importer's record shape.
func DefaultFields() []Field {
	return []Field{
		{Key: "id", Path: "id"},
		{Key: "firstname", Path: "merge_fields.FNAME"},
		{Key: "lastname", Path: "merge_fields.LNAME"},
		{Key: "email", Path: "email_address"},
		{Key: "status", Path: "status"},
	}
}

// Mapping is a compiled, ordered mapping. It is safe for concurrent use.
type Mapping struct {
	names []string   // output keys
	keys  [][]byte   // each output key, JSON-encoded with its colon: `"firstname":`
	paths [][]string // each path, split at dots
	// apiFields is what to ask Mailchimp for; see Fields.
	apiFields []string
}

// Always requested: the engine needs each member's id to de-duplicate and
// its last_changed to checkpoint, whatever the mapping says.
var engineFields = []string{"id", "last_changed"}

// New compiles fields. Keys must be unique and non-empty; paths must be dot
// paths without empty segments.
func New(fields []Field) (*Mapping, error) {
	if len(fields) == 0 {
		return nil, errors.New("mapping: no fields")
	}
	m := &Mapping{}
	seenKey := map[string]bool{}
	seenAPI := map[string]bool{}
	addAPI := func(path []string) {
		// Mailchimp's fields= takes object paths only: stop at the first
		// array index, and ask for the whole array.
		for i, seg := range path {
			if isIndex(seg) {
				path = path[:i]
				break
			}
		}
		f := "members." + strings.Join(path, ".")
		if !seenAPI[f] {
			seenAPI[f] = true
			m.apiFields = append(m.apiFields, f)
		}
	}
	for _, f := range fields {
		if f.Key == "" {
			return nil, errors.New("mapping: empty output key")
		}
		if seenKey[f.Key] {
			return nil, fmt.Errorf("mapping: output key %q appears twice", f.Key)
		}
		seenKey[f.Key] = true
		path := strings.Split(f.Path, ".")
		for _, seg := range path {
			if seg == "" {
				return nil, fmt.Errorf("mapping: %s: path %q has an empty segment", f.Key, f.Path)
			}
		}
		if isIndex(path[0]) {
			return nil, fmt.Errorf("mapping: %s: path %q starts with an array index", f.Key, f.Path)
		}
		key, _ := json.Marshal(f.Key)
		m.names = append(m.names, f.Key)
		m.keys = append(m.keys, append(key, ':'))
		m.paths = append(m.paths, path)
		addAPI(path)
	}
	for _, f := range engineFields {
		addAPI([]string{f})
	}
	m.apiFields = append(m.apiFields, "total_items")
	return m, nil
}

// Fields returns the Mailchimp `fields=` list for the members endpoint: every
// mapped path under "members.", plus members.id, members.last_changed and
// total_items, in a stable order.
func (m *Mapping) Fields() []string { return append([]string(nil), m.apiFields...) }

// Keys returns the output keys in order.
func (m *Mapping) Keys() []string { return append([]string(nil), m.names...) }

// IDKey returns the output key that holds the member's id: the first field
// whose path is exactly "id" ("id: id" in the default mapping). A target
// keys its records by it, so deleting a member's record (a tombstone record
// or a DELETE request) needs it; ok is false when no field maps the id.
// A path that only starts with id ("id.x") or ends in it ("tags.0.id") is
// not the member's id.
func (m *Mapping) IDKey() (key string, ok bool) { return m.KeyOf("id") }

// KeyOf returns the output key of the first field whose path is exactly
// path ("email_address"), and whether there is one.
func (m *Mapping) KeyOf(path string) (key string, ok bool) {
	for i, p := range m.paths {
		if strings.Join(p, ".") == path {
			return m.names[i], true
		}
	}
	return "", false
}

// Append appends the record for member to buf as a JSON object with the
// output keys in mapping order. A path that is missing gives null. Values
// keep their JSON type: a merge field that is a number stays a number when
// the member was decoded with json.Decoder.UseNumber.
func (m *Mapping) Append(buf []byte, member map[string]any) ([]byte, error) {
	buf = append(buf, '{')
	for i, path := range m.paths {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, m.keys[i]...)
		v, ok := Lookup(member, path)
		if !ok {
			buf = append(buf, "null"...)
			continue
		}
		var err error
		if buf, err = appendValue(buf, v); err != nil {
			return nil, fmt.Errorf("mapping: %s: %w", m.names[i], err)
		}
	}
	return append(buf, '}'), nil
}

// Lookup follows path through nested objects and arrays (a numeric segment
// indexes an array).
func Lookup(v any, path []string) (any, bool) {
	for _, seg := range path {
		switch node := v.(type) {
		case map[string]any:
			next, ok := node[seg]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			v = node[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// appendValue encodes the common member value types without reflection;
// anything else goes through encoding/json.
func appendValue(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case string:
		return appendString(buf, x), nil
	case bool:
		return strconv.AppendBool(buf, x), nil
	case json.Number:
		if !json.Valid([]byte(x)) {
			return nil, fmt.Errorf("invalid number %q", string(x))
		}
		return append(buf, x...), nil
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return append(buf, b...), nil
	}
}

// appendString JSON-encodes s. Plain ASCII without characters that need
// escaping takes the fast path; everything else goes through encoding/json,
// which escapes correctly (including invalid UTF-8 and U+2028/U+2029).
func appendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

func isIndex(seg string) bool {
	_, err := strconv.Atoi(seg)
	return err == nil
}
