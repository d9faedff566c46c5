package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// The walks below take their schema from the Go types, so a field added to
// Config, Connection or any struct under them is checked, expanded and
// decoded with no change here.

var (
	configType      = reflect.TypeFor[Config]()
	connectionType  = reflect.TypeFor[Connection]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	stringType      = reflect.TypeFor[string]()
)

type schemaField struct {
	name  string
	index int // -1 for a key the file has but Config does not keep (defaults)
	typ   reflect.Type
}

// fieldsOf lists the keys a struct accepts: its yaml tags, or the lower-cased
// field name as yaml.v3 uses when there is no tag. The document itself also
// accepts defaults, which holds connection settings and is consumed while
// loading.
func fieldsOf(t reflect.Type) []schemaField {
	// A directory of thousands of connections asks for the same few types
	// hundreds of thousands of times; reflection each time was a third of
	// the load.
	if f, ok := fieldCache.Load(t); ok {
		return f.([]schemaField)
	}
	out := schemaOf(t)
	fieldCache.Store(t, out)
	return out
}

var fieldCache sync.Map // reflect.Type -> []schemaField

func schemaOf(t reflect.Type) []schemaField {
	var out []schemaField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, schemaField{name: name, index: i, typ: f.Type})
	}
	if t == configType {
		out = append(out, schemaField{name: "defaults", index: -1, typ: connectionType})
	}
	return out
}

func findField(fields []schemaField, key string) (schemaField, bool) {
	for _, f := range fields {
		if f.name == key {
			return f, true
		}
	}
	return schemaField{}, false
}

// prepare walks the raw document: it reports unknown and repeated keys and
// expands ${VAR} in string values. Values under unknown keys are left alone,
// since the key is already reported.
func (l *loader) prepare(n *yaml.Node, t reflect.Type, path string) {
	switch {
	case n.Kind == yaml.ScalarNode:
		l.expandNode(n, t, path)
	case reflect.PointerTo(t).Implements(unmarshalerType):
		// Decoded by its own method (Mapping): no schema, but its string
		// values still take ${VAR}.
		for i, c := range n.Content {
			switch {
			case n.Kind == yaml.SequenceNode:
				l.expandNode(c, stringType, joinIndex(path, i))
			case n.Kind == yaml.MappingNode && i%2 == 1:
				l.expandNode(c, stringType, joinKey(path, n.Content[i-1].Value))
			}
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := fieldsOf(t)
		l.eachPair(n, path, func(key string, k, v *yaml.Node) {
			p := joinKey(path, key)
			if path == "defaults" && key == "name" {
				l.fail(p, k, "is not allowed in defaults: each connection has its own name")
				return
			}
			f, ok := findField(fields, key)
			if !ok {
				l.fail(p, k, "unknown key"+suggest(key, fields))
				return
			}
			l.prepare(v, f.typ, p)
		})
	case t.Kind() == reflect.String && n.Kind == yaml.SequenceNode:
		// mailchimp.list_id, whose list Load expands; any other string
		// given a list is refused when decoded.
		for i, c := range n.Content {
			l.expandNode(c, t, joinIndex(path, i))
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			l.prepare(c, t.Elem(), joinIndex(path, i))
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		l.eachPair(n, path, func(key string, _, v *yaml.Node) {
			l.prepare(v, t.Elem(), joinKey(path, key))
		})
	}
}

// eachPair calls fn for each entry of a mapping, reporting keys that are not
// strings or that repeat an earlier key.
func (l *loader) eachPair(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node)) {
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			l.fail(path, k, "key must be a string")
			continue
		}
		if f, dup := first[k.Value]; dup {
			l.fail(joinKey(path, k.Value), k, fmt.Sprintf("is repeated; first at line %d", f.Line))
		} else {
			first[k.Value] = k
		}
		fn(k.Value, k, v)
	}
}

// expandNode expands ${VAR} in a string scalar. A plain (unquoted) value
// bound for a non-string field is then read as if the result had been
// written there, so batch_size: ${BATCH} works; one bound for a string stays
// a string even when the variable holds "123" or "null".
func (l *loader) expandNode(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || !strings.Contains(n.Value, "$") {
		return
	}
	out, unset, err := expand(n.Value, l.lookupEnv)
	if err != nil {
		l.fail(path, n, err.Error())
		return
	}
	for _, name := range unset {
		l.fail(path, n, fmt.Sprintf("environment variable %s is not set", name))
	}
	if out == n.Value {
		return
	}
	n.Value = out
	l.fromEnv[n] = true
	quoted := n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0
	if !quoted && t.Kind() != reflect.String {
		n.Tag = ""
	}
}

// prefiller is a type whose zero value is not its default; the decoder
// prefills each new element and decodes the file over it.
type prefiller interface{ prefill() }

// decode sets v from n, recording which node each field came from. A null
// value leaves v as it is, which is how an absent or ~ field keeps its
// default. Keys that prepare reported as unknown are skipped.
func (l *loader) decode(n *yaml.Node, v reflect.Value, path string) {
	l.nodes[path] = n
	if n.ShortTag() == "!!null" {
		return
	}
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		// Entries are recorded so that Validate's problems about them
		// (mapping.email) get a line; the last of repeated keys wins, which
		// is the one a "repeated" problem is about.
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			l.nodes[joinKey(path, n.Content[i].Value)] = n.Content[i+1]
		}
		if err := u.UnmarshalYAML(n); err != nil {
			var ne *nodeError
			if errors.As(err, &ne) {
				if ne.key != "" {
					path = joinKey(path, ne.key)
				}
				msg := ne.msg
				if !ne.atKey {
					msg += l.got(ne.node)
				}
				l.fail(path, ne.node, msg)
				return
			}
			l.fail(path, n, err.Error()+l.got(n))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			l.fail(path, n, "must be a mapping"+l.got(n))
			return
		}
		fields := fieldsOf(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			if f, ok := findField(fields, n.Content[i].Value); ok && f.index >= 0 {
				l.decode(n.Content[i+1], v.Field(f.index), joinKey(path, n.Content[i].Value))
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			l.fail(path, n, "must be a list"+l.got(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			if p, ok := s.Index(i).Addr().Interface().(prefiller); ok {
				p.prefill()
			}
			l.decode(c, s.Index(i), joinIndex(path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			l.fail(path, n, "must be a mapping"+l.got(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i].Value, n.Content[i+1]
			if val.ShortTag() == "!!null" {
				// key: ~ drops an entry inherited from defaults.
				l.nodes[joinKey(path, k)] = val
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			l.decode(val, e, joinKey(path, k))
			m.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	case reflect.Pointer:
		// An optional setting (a connection's webhooks): set means a value,
		// even false, so it is decoded like the value it points to.
		e := reflect.New(v.Type().Elem())
		before := len(l.problems)
		l.decode(n, e.Elem(), path)
		if len(l.problems) == before {
			v.Set(e)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			l.fail(path, n, "must be a string"+l.got(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var x int64
		if n.Kind != yaml.ScalarNode || n.Decode(&x) != nil || v.OverflowInt(x) {
			l.fail(path, n, "must be a whole number"+l.got(n))
			return
		}
		v.SetInt(x)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			l.fail(path, n, "must be true or false"+l.got(n))
			return
		}
		v.SetBool(b)
	default:
		if err := n.Decode(v.Addr().Interface()); err != nil {
			l.fail(path, n, "has the wrong type"+l.got(n))
		}
	}
}

// got describes what was found instead, quoting the value only when it was
// written in the file: a value from ${VAR} may be a secret in the wrong place.
func (l *loader) got(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return ", got a mapping"
	case n.Kind == yaml.SequenceNode:
		return ", got a list"
	case n.Kind != yaml.ScalarNode || l.fromEnv[n]:
		return ""
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return fmt.Sprintf(", got %q", v)
}

// suggest names the known key closest to a misspelt one, if any is close.
func suggest(key string, fields []schemaField) string {
	best, bestDist := "", 3
	for _, f := range fields {
		if d := editDistance(key, f.name); d < bestDist {
			best, bestDist = f.name, d
		}
	}
	if best == "" {
		return ""
	}
	return ", did you mean " + best + "?"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
