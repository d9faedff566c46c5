package mailchimp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Decoding members pages is most of the CPU a sync spends, and it happens
// while the request holds one of the key's 10 connection slots: a run of 10
// pages arriving together on 2 cores used to keep the next 10 requests
// waiting some 25 ms a round, a tenth of Mailchimp's answer time. So pages
// are decoded by membersDecoder below, a parser that builds exactly what
// encoding/json builds for a page (members as map[string]any, numbers as
// json.Number) at a fraction of the cost. Whenever the document is anything
// but a plain page (a syntax error, a field of the wrong type, a key in
// another case), the whole body goes through encoding/json instead, so the
// result, and the error, are always encoding/json's own.

// maxPageBody bounds a members response read into memory: a page of 1000
// members with every field is a few megabytes; anything far larger is not
// a page.
const maxPageBody = 64 << 20

var errPageTooLarge = errors.New("members response larger than 64 MiB")

var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// membersBody is the members response document.
type membersBody struct {
	Members    []Member `json:"members"`
	ListID     string   `json:"list_id"`
	TotalItems int      `json:"total_items"`
}

// decodeMembersPage reads and decodes a members response. Read errors are
// returned as they are (a truncated body is io.ErrUnexpectedEOF), decode
// errors are encoding/json's, so the client classifies both as before.
func decodeMembersPage(resp *http.Response) (membersBody, error) {
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 8<<20 {
			buf.Reset()
			pageBuffers.Put(buf)
		}
	}()
	buf.Reset()
	if resp.ContentLength > 0 && resp.ContentLength <= maxPageBody {
		buf.Grow(int(resp.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, maxPageBody+1))
	if err != nil {
		return membersBody{}, err
	}
	if n > maxPageBody {
		return membersBody{}, errPageTooLarge
	}
	return parseMembersBody(buf.Bytes())
}

// parseMembersBody decodes a members document, fast when it is a plain
// page and through encoding/json otherwise.
func parseMembersBody(data []byte) (membersBody, error) {
	d := newMembersDecoder(data)
	if body, ok := d.page(); ok {
		return body, nil
	}
	var body membersBody
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := dec.Decode(&body)
	return body, err
}

// membersDecoder parses one document. Any method returning ok == false
// means "not a plain page": the caller falls back to encoding/json, so the
// decoder never has to explain what is wrong, only to be sure that what it
// accepts is what encoding/json would build.
type membersDecoder struct {
	data []byte
	// text is data as one string: string values without escapes are
	// slices of it, which costs one allocation a page instead of one a
	// value. The members of a page are mapped and dropped together, so
	// none of them keeps the page's text alive for long.
	text  string
	pos   int
	depth int // objects and arrays open around pos
	// keys interns object keys: a page repeats the same few thousand
	// times, and a map lookup with string(b) does not allocate.
	keys map[string]string
}

func newMembersDecoder(data []byte) *membersDecoder {
	return &membersDecoder{data: data, text: string(data), keys: make(map[string]string, 32)}
}

func (d *membersDecoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// next returns the next byte after white space, without consuming it.
func (d *membersDecoder) next() (byte, bool) {
	d.skipSpace()
	if d.pos >= len(d.data) {
		return 0, false
	}
	return d.data[d.pos], true
}

// page parses the top-level object. As json.Decoder.Decode does, it reads
// one value and ignores what follows it.
func (d *membersDecoder) page() (body membersBody, ok bool) {
	if c, ok := d.next(); !ok || c != '{' {
		return body, false
	}
	d.pos++
	d.depth = 1
	if c, ok := d.next(); ok && c == '}' {
		d.pos++
		return body, true
	}
	seenMembers := false
	for {
		key, ok := d.rawString()
		if !ok || !d.colon() {
			return body, false
		}
		switch {
		case key == "members":
			if seenMembers {
				// encoding/json decodes a second array into the first
				// one's members, merging them: its business.
				return body, false
			}
			seenMembers = true
			if body.Members, ok = d.members(); !ok {
				return body, false
			}
		case key == "list_id":
			if body.ListID, ok = d.stringOrNull(body.ListID); !ok {
				return body, false
			}
		case key == "total_items":
			if body.TotalItems, ok = d.intOrNull(body.TotalItems); !ok {
				return body, false
			}
		case strings.EqualFold(key, "members"), strings.EqualFold(key, "list_id"), strings.EqualFold(key, "total_items"):
			return body, false // encoding/json matches field names in any case
		default:
			if _, ok := d.value(); !ok {
				return body, false
			}
		}
		if !d.comma() {
			return body, d.closed('}')
		}
	}
}

// comma consumes the ',' between two members of an object or an array; at
// anything else it consumes nothing and reports false.
func (d *membersDecoder) comma() bool {
	c, ok := d.next()
	if ok && c == ',' {
		d.pos++
		return true
	}
	return false
}

// closed consumes the closing byte of an object or array.
func (d *membersDecoder) closed(closing byte) bool {
	c, ok := d.next()
	if !ok || c != closing {
		return false
	}
	d.pos++
	return true
}

func (d *membersDecoder) colon() bool {
	c, ok := d.next()
	if !ok || c != ':' {
		return false
	}
	d.pos++
	return true
}

// members parses the members array: each element an object, or null.
func (d *membersDecoder) members() ([]Member, bool) {
	c, ok := d.next()
	if !ok {
		return nil, false
	}
	if c == 'n' {
		return nil, d.literal("null")
	}
	if c != '[' {
		return nil, false
	}
	d.pos++
	d.depth++
	defer func() { d.depth-- }()
	out := make([]Member, 0, 1000)
	if c, ok := d.next(); ok && c == ']' {
		d.pos++
		return out, true
	}
	for {
		c, ok := d.next()
		if !ok {
			return nil, false
		}
		var m map[string]any
		switch c {
		case '{':
			if m, ok = d.object(); !ok {
				return nil, false
			}
		case 'n':
			if !d.literal("null") {
				return nil, false
			}
		default:
			return nil, false // not an object: encoding/json reports the type
		}
		out = append(out, m)
		if !d.comma() {
			return out, d.closed(']')
		}
	}
}

func (d *membersDecoder) stringOrNull(old string) (string, bool) {
	c, ok := d.next()
	switch {
	case !ok:
		return "", false
	case c == 'n':
		return old, d.literal("null") // null leaves the field as it was
	case c != '"':
		return "", false
	}
	s, ok := d.rawString()
	return s, ok
}

// intOrNull parses a plain integer that fits an int; anything else (a
// fraction, an exponent, a huge number) is left to encoding/json.
func (d *membersDecoder) intOrNull(old int) (int, bool) {
	c, ok := d.next()
	if !ok {
		return 0, false
	}
	if c == 'n' {
		return old, d.literal("null")
	}
	num, ok := d.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(string(num))
	return n, err == nil
}

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
