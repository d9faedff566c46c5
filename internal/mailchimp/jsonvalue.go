package mailchimp

import (
	"bytes"
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// The values inside a page, as membersDecoder parses them: what
// encoding/json builds for an interface{} with UseNumber (map[string]any,
// []any, string, json.Number, bool, nil), strings unescaped its way.

// value parses any JSON value into what encoding/json gives an interface{}
// with UseNumber.
func (d *membersDecoder) value() (any, bool) {
	c, ok := d.next()
	if !ok {
		return nil, false
	}
	switch c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		return d.rawString()
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	}
	n, ok := d.number()
	return n, ok
}

// maxDepth is encoding/json's limit on nesting, the page's own object
// counted; deeper documents are its to refuse.
const maxDepth = 10000

func (d *membersDecoder) object() (map[string]any, bool) {
	d.pos++ // '{'
	if d.depth++; d.depth > maxDepth {
		return nil, false
	}
	defer func() { d.depth-- }()
	m := make(map[string]any, 8)
	if c, ok := d.next(); ok && c == '}' {
		d.pos++
		return m, true
	}
	for {
		if c, ok := d.next(); !ok || c != '"' {
			return nil, false
		}
		key, ok := d.key()
		if !ok || !d.colon() {
			return nil, false
		}
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		m[key] = v
		if !d.comma() {
			return m, d.closed('}')
		}
	}
}

func (d *membersDecoder) array() ([]any, bool) {
	d.pos++ // '['
	if d.depth++; d.depth > maxDepth {
		return nil, false
	}
	defer func() { d.depth-- }()
	out := []any{}
	if c, ok := d.next(); ok && c == ']' {
		d.pos++
		return out, true
	}
	for {
		v, ok := d.value()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if !d.comma() {
			return out, d.closed(']')
		}
	}
}

func (d *membersDecoder) literal(word string) bool {
	if !bytes.HasPrefix(d.data[d.pos:], []byte(word)) {
		return false
	}
	d.pos += len(word)
	return true
}

// number consumes a number with JSON's grammar and returns its text.
func (d *membersDecoder) number() (json.Number, bool) {
	start := d.pos
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.pos < len(d.data) && d.data[d.pos] == '-' {
		d.pos++
	}
	switch {
	case d.pos < len(d.data) && d.data[d.pos] == '0':
		d.pos++
	case digits() == 0:
		return "", false
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			return "", false
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return "", false
		}
	}
	return json.Number(d.data[start:d.pos]), true
}

// key parses an object key, interned.
func (d *membersDecoder) key() (string, bool) {
	raw, escaped, ok := d.stringBytes()
	if !ok {
		return "", false
	}
	if escaped {
		return unquote(raw)
	}
	if k, ok := d.keys[string(raw)]; ok {
		return k, true
	}
	k := string(raw)
	d.keys[k] = k
	return k, true
}

// rawString parses a string value at d.pos, which must be '"'.
func (d *membersDecoder) rawString() (string, bool) {
	if c, ok := d.next(); !ok || c != '"' {
		return "", false
	}
	start := d.pos + 1
	raw, escaped, ok := d.stringBytes()
	if !ok {
		return "", false
	}
	if escaped {
		return unquote(raw)
	}
	return d.text[start : start+len(raw)], true
}

// stringBytes consumes a string and returns its bytes between the quotes,
// and whether it holds escapes or bytes that need rewriting (anything
// outside printable ASCII, which is checked for valid UTF-8 by unquote).
func (d *membersDecoder) stringBytes() (raw []byte, escaped, ok bool) {
	d.pos++ // '"'
	start := d.pos
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			raw = d.data[start:d.pos]
			d.pos++
			return raw, escaped, true
		case c == '\\':
			escaped = true
			d.pos += 2 // the escaped byte cannot end the string
		case c < 0x20:
			return nil, false, false // encoding/json refuses control bytes
		case c >= utf8.RuneSelf:
			escaped = true
			d.pos++
		default:
			d.pos++
		}
	}
	return nil, false, false
}

// unquote decodes the body of a string with escapes or non-ASCII bytes as
// encoding/json does: invalid UTF-8 and lone surrogates become U+FFFD.
func unquote(s []byte) (string, bool) {
	b := make([]byte, 0, len(s)+2*utf8.UTFMax)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return "", false
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, n, ok := unicodeEscape(s[i:])
				if !ok {
					return "", false
				}
				b = utf8.AppendRune(b, r)
				i += n
				continue
			default:
				return "", false
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	return string(b), true
}

// unicodeEscape decodes \uXXXX at the start of s, with the \uXXXX of a
// surrogate pair after it, and says how many bytes it used.
func unicodeEscape(s []byte) (rune, int, bool) {
	r, ok := hex4(s)
	if !ok {
		return 0, 0, false
	}
	if utf16.IsSurrogate(r) {
		if r2, ok := hex4(s[6:]); ok && len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				return dec, 12, true
			}
		}
		return utf8.RuneError, 6, true
	}
	return r, 6, true
}

// hex4 reads the four hex digits of \uXXXX at the start of s.
func hex4(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}
