package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as Go writes one: "90m", "1h30m", "60s".
// A bare number other than 0 is rejected: "90" could mean seconds or minutes,
// and guessing wrong syncs sixty times too often or too rarely.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d the way the file does, for JSON and YAML output.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalYAML reads "90m" and the like. Its errors never quote the value:
// the loader adds it when it is safe to show.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	const want = "must be a duration such as 90m, 1h30m or 60s"
	if n.Kind != yaml.ScalarNode {
		return errors.New(want)
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		if n.Value == "0" {
			*d = 0
			return nil
		}
		return errors.New("needs a unit, e.g. 90m or 60s (a bare number is ambiguous)")
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return errors.New(want)
	}
	*d = Duration(v)
	return nil
}

// Field is one entry of a Mapping: the record gets Key, filled from the
// member's value at the dot path Path (e.g. "merge_fields.FNAME").
type Field struct {
	Key  string
	Path string
}

// Mapping is the record shape, in the file's order so records come out with
// their keys in the order the user wrote them.
type Mapping []Field

// DefaultMapping is the original importer's record shape.
func DefaultMapping() Mapping {
	return Mapping{
		{Key: "id", Path: "id"},
		{Key: "firstname", Path: "merge_fields.FNAME"},
		{Key: "lastname", Path: "merge_fields.LNAME"},
		{Key: "email", Path: "email_address"},
		{Key: "status", Path: "status"},
	}
}

// UnmarshalYAML reads a YAML mapping of record key to member path, keeping
// its order. Repeated keys are kept so that Validate can name them.
func (m *Mapping) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return errors.New("must be a mapping of record key to member path, e.g. email: email_address")
	}
	out := make(Mapping, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return &nodeError{node: k, msg: "keys must be strings"}
		}
		path := v.Value
		switch {
		case v.Kind != yaml.ScalarNode:
			return &nodeError{key: k.Value, node: v, msg: "must be a member path such as merge_fields.FNAME"}
		case v.ShortTag() == "!!null":
			path = ""
		}
		out = append(out, Field{Key: k.Value, Path: path})
	}
	*m = out
	return nil
}

// MarshalYAML writes m back as an ordered mapping.
func (m Mapping) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, f := range m {
		n.Content = append(n.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: f.Key},
			&yaml.Node{Kind: yaml.ScalarNode, Value: f.Path})
	}
	return n, nil
}

// Tombstone is what a tombstone record carries besides the member's id:
// record key to a scalar value (string, int64, uint64 past int64, float64,
// bool or nil for null).
type Tombstone map[string]any

// DefaultTombstone is {status: deleted}.
func DefaultTombstone() Tombstone { return Tombstone{"status": "deleted"} }

// UnmarshalYAML reads a YAML mapping of record key to scalar value. A value
// keeps its YAML type (7 is a number, "7" a string, ~ is null); a list or
// mapping is refused, since a target compares a tombstone's fields with its
// records' and a nested value would be a record shape of its own.
func (t *Tombstone) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return errors.New("must be a mapping of record key to value, e.g. status: deleted")
	}
	out := make(Tombstone, len(n.Content)/2)
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return &nodeError{node: k, msg: "keys must be strings"}
		}
		if line, dup := first[k.Value]; dup {
			return &nodeError{key: k.Value, node: k, msg: fmt.Sprintf("is repeated; first at line %d", line), atKey: true}
		}
		first[k.Value] = k.Line
		val, err := scalarValue(v)
		if err != nil {
			return &nodeError{key: k.Value, node: v, msg: err.Error()}
		}
		out[k.Value] = val
	}
	*t = out
	return nil
}

// scalarValue is the JSON value of a YAML scalar.
func scalarValue(n *yaml.Node) (any, error) {
	const want = "must be a string, number, true, false or null"
	if n.Kind != yaml.ScalarNode {
		return nil, errors.New(want)
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, errors.New(want)
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return u, nil
		}
		return nil, errors.New("must be a whole number of at most 64 bits")
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, errors.New(want)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, errors.New("must be a finite number: JSON has no infinity or NaN")
		}
		return f, nil
	}
	// Strings, and what YAML would read as a timestamp or binary: JSON
	// has neither, so they go as written.
	return n.Value, nil
}

// nodeError lets an UnmarshalYAML method point at the exact entry that is
// wrong, so the problem names that field and line rather than the whole value.
type nodeError struct {
	key  string // the entry's key under the value being decoded; "" for the value itself
	node *yaml.Node
	msg  string
	// atKey says node is the entry's key, not a value: the problem does not
	// quote what was found, which is the key the field already names.
	atKey bool
}

func (e *nodeError) Error() string {
	if e.key == "" {
		return e.msg
	}
	return fmt.Sprintf("%s: %s", e.key, e.msg)
}

// Secret holds a credential. Every way of printing or encoding it gives
// "[redacted]", so a config, connection or header map can be logged whole.
// Reveal is the one way to the value, for code that sends it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

func (Secret) String() string   { return redacted }
func (Secret) GoString() string { return redacted }

// Format covers every fmt verb (%x and %q included), which String alone would not.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Secret) MarshalYAML() (any, error)    { return redacted, nil }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
