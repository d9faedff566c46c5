package mcsim

import (
	"strings"
)

// fieldSelection is the parsed form of the `fields` and `exclude_fields`
// query parameters: a tree of dot-path segments. Paths apply to the response
// object; a path through an array applies to each element
// (members.merge_fields.FNAME selects FNAME in every member).
//
// A nil *fieldSelection selects everything, which is the common case and
// costs nothing per field.
type fieldSelection struct {
	all      bool // this subtree is selected (by itself or an ancestor), minus excluded parts
	some     bool // some descendant was named in `fields`
	excluded bool // named in exclude_fields: never written
	children map[string]*fieldSelection
}

// parseFieldSelection builds the tree for one request. It returns nil when
// neither parameter narrows the response.
func parseFieldSelection(fields, exclude string) *fieldSelection {
	include := splitPaths(fields)
	excl := splitPaths(exclude)
	if len(include) == 0 && len(excl) == 0 {
		return nil
	}
	root := &fieldSelection{all: len(include) == 0}
	for _, p := range include {
		n := root
		for _, seg := range p {
			n.some = true
			n = n.childNode(seg)
		}
		n.all = true
	}
	for _, p := range excl {
		n := root
		for _, seg := range p {
			n = n.childNode(seg)
		}
		n.excluded = true
	}
	root.propagate()
	return root
}

func splitPaths(s string) [][]string {
	var out [][]string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		var segs []string
		for _, seg := range strings.Split(p, ".") {
			if seg != "" {
				segs = append(segs, seg)
			}
		}
		if len(segs) > 0 {
			out = append(out, segs)
		}
	}
	return out
}

func (n *fieldSelection) childNode(seg string) *fieldSelection {
	if n.children == nil {
		n.children = make(map[string]*fieldSelection)
	}
	c := n.children[seg]
	if c == nil {
		c = &fieldSelection{}
		n.children[seg] = c
	}
	return c
}

// propagate pushes `all` down, so a lookup only ever looks one level deep.
func (n *fieldSelection) propagate() {
	for _, c := range n.children {
		if n.all {
			c.all = true
		}
		c.propagate()
	}
}

// child reports whether key, below n, is written, and the selection that
// governs its value (nil: all of it). scalar says the value has no children,
// so naming only its descendants (total_items.x) does not select it.
func (n *fieldSelection) child(key string, scalar bool) (*fieldSelection, bool) {
	if n == nil {
		return nil, true
	}
	c := n.children[key]
	switch {
	case c == nil:
		return nil, n.all
	case c.excluded:
		return nil, false
	case c.all && len(c.children) == 0:
		return nil, true
	case c.all:
		return c, true
	case c.some && !scalar:
		return c, true
	}
	return nil, false
}

// object is an ordered JSON object for the rarely requested, irregular
// responses (the list resource). The members endpoint, which must be fast,
// has its own encoder in encode.go.
type object []field

type field struct {
	key   string
	value any // string, bool, int, int64, float64, object or []object
}

// appendObject writes o, keeping only what sel selects.
func appendObject(b []byte, o object, sel *fieldSelection) []byte {
	b = append(b, '{')
	first := true
	for _, f := range o {
		_, isObj := f.value.(object)
		_, isArr := f.value.([]object)
		childSel, ok := sel.child(f.key, !isObj && !isArr)
		if !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, f.key)
		b = append(b, ':')
		switch v := f.value.(type) {
		case object:
			b = appendObject(b, v, childSel)
		case []object:
			b = append(b, '[')
			for i, e := range v {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendObject(b, e, childSel)
			}
			b = append(b, ']')
		default:
			b = appendAny(b, v)
		}
	}
	return append(b, '}')
}
