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
)

// Decoding members pages is most of the CPU a sync spends, and it happens
// while the request holds one of the key's 10 connection slots: 10 pages
// arriving together on 2 cores kept the next 10 requests waiting tens of
// milliseconds a round, on top of Mailchimp's answer time. So pages
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

// maxPreallocated bounds the buffer reserved from Content-Length: a page
// of 1000 members with the usual fields is well under it.
const maxPreallocated = 8 << 20

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
	// Content-Length is the server's word, not bytes received: trust it for
	// a page's usual size only, so ten requests in flight cannot reserve
	// 64 MiB each before a byte arrives. A larger body grows the buffer as
	// it is read.
	if resp.ContentLength > 0 {
		buf.Grow(int(min(resp.ContentLength, maxPreallocated)))
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
	// Sized from the body (a member takes a hundred bytes or more) rather
	// than for a full page: thousands of small audiences synced at once
	// would otherwise each hold a thousand slots.
	out := make([]Member, 0, min(MaxPageSize, len(d.data)/100+1))
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
