package mcsim

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The members endpoint encodes members by hand, appending to a byte slice,
// rather than through encoding/json and a map per member: the simulator must
// serve pages far faster than any sync can consume them, or benchmarks of
// the engine would measure the simulator (BenchmarkMembersPage has the
// figure). The field selection is resolved once per request into a
// memberPlan.

// memberField names one top-level member field, in the order the API writes
// them.
type memberField int

const (
	mID memberField = iota
	mEmailAddress
	mUniqueEmailID
	mContactID
	mFullName
	mWebID
	mEmailType
	mStatus
	mMergeFields
	mInterests
	mStats
	mIPSignup
	mTimestampSignup
	mIPOpt
	mTimestampOpt
	mMemberRating
	mLastChanged
	mLanguage
	mVIP
	mEmailClient
	mLocation
	mSource
	mTagsCount
	mTags
	mListID
	numMemberFields
)

var memberFieldNames = [numMemberFields]string{
	"id", "email_address", "unique_email_id", "contact_id", "full_name", "web_id",
	"email_type", "status", "merge_fields", "interests", "stats", "ip_signup",
	"timestamp_signup", "ip_opt", "timestamp_opt", "member_rating", "last_changed",
	"language", "vip", "email_client", "location", "source", "tags_count", "tags",
	"list_id",
}

// memberObjectFields are the fields whose value is an object or an array of
// objects, so a path may select part of them.
var memberObjectFields = map[memberField]bool{
	mMergeFields: true, mInterests: true, mStats: true, mLocation: true, mTags: true,
}

// memberPlan is the resolved field selection for one member object.
type memberPlan []plannedField

type plannedField struct {
	field memberField
	key   []byte          // `"name":`, ready to append
	sel   *fieldSelection // selection inside the value; nil means all of it
}

var allMemberFields = newMemberPlan(nil)

// newMemberPlan resolves sel (the selection below "members") once, so
// encoding a member is a walk over a short slice.
func newMemberPlan(sel *fieldSelection) memberPlan {
	var p memberPlan
	for f := range numMemberFields {
		name := memberFieldNames[f]
		childSel, ok := sel.child(name, !memberObjectFields[f])
		if !ok {
			continue
		}
		key := appendString(nil, name)
		p = append(p, plannedField{field: f, key: append(key, ':'), sel: childSel})
	}
	return p
}

// standardMergeTags are written first, in this order, so the common fields
// read naturally; other merge fields follow sorted by tag.
var standardMergeTags = [...]string{"FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY", "SCORE"}

func appendMember(b []byte, m *Member, p memberPlan) []byte {
	b = append(b, '{')
	for i, pf := range p {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, pf.key...)
		switch pf.field {
		case mID:
			b = appendString(b, m.ID)
		case mEmailAddress:
			b = appendString(b, m.EmailAddress)
		case mUniqueEmailID:
			b = appendString(b, m.UniqueEmailID)
		case mContactID:
			b = appendString(b, m.ContactID)
		case mFullName:
			b = appendString(b, m.FullName)
		case mWebID:
			b = strconv.AppendInt(b, m.WebID, 10)
		case mEmailType:
			b = appendString(b, m.EmailType)
		case mStatus:
			b = appendString(b, m.Status)
		case mMergeFields:
			b = appendMergeFields(b, m.MergeFields, pf.sel)
		case mInterests:
			b = appendInterests(b, m.Interests, pf.sel)
		case mStats:
			b = appendMemberStats(b, &m.Stats, pf.sel)
		case mIPSignup:
			b = appendString(b, m.IPSignup)
		case mTimestampSignup:
			b = appendTimeString(b, m.TimestampSignup)
		case mIPOpt:
			b = appendString(b, m.IPOpt)
		case mTimestampOpt:
			b = appendTimeString(b, m.TimestampOpt)
		case mMemberRating:
			b = strconv.AppendInt(b, int64(m.MemberRating), 10)
		case mLastChanged:
			b = appendTimeString(b, m.LastChanged)
		case mLanguage:
			b = appendString(b, m.Language)
		case mVIP:
			b = strconv.AppendBool(b, m.VIP)
		case mEmailClient:
			b = appendString(b, m.EmailClient)
		case mLocation:
			b = appendLocation(b, &m.Location, pf.sel)
		case mSource:
			b = appendString(b, m.Source)
		case mTagsCount:
			b = strconv.AppendInt(b, int64(len(m.Tags)), 10)
		case mTags:
			b = appendTags(b, m.Tags, pf.sel)
		case mListID:
			b = appendString(b, m.ListID)
		}
	}
	return append(b, '}')
}

func appendLocation(b []byte, l *Location, sel *fieldSelection) []byte {
	if sel == nil { // the common case, without building an object
		b = append(b, `{"latitude":`...)
		b = appendFloat(b, l.Latitude)
		b = append(b, `,"longitude":`...)
		b = appendFloat(b, l.Longitude)
		b = append(b, `,"gmtoff":`...)
		b = strconv.AppendInt(b, int64(l.GMTOff), 10)
		b = append(b, `,"dstoff":`...)
		b = strconv.AppendInt(b, int64(l.DSTOff), 10)
		b = append(b, `,"country_code":`...)
		b = appendString(b, l.CountryCode)
		b = append(b, `,"timezone":`...)
		b = appendString(b, l.Timezone)
		return append(b, '}')
	}
	return appendObject(b, object{
		{"latitude", l.Latitude}, {"longitude", l.Longitude},
		{"gmtoff", l.GMTOff}, {"dstoff", l.DSTOff},
		{"country_code", l.CountryCode}, {"timezone", l.Timezone},
	}, sel)
}

func appendMemberStats(b []byte, s *MemberStats, sel *fieldSelection) []byte {
	if sel == nil {
		b = append(b, `{"avg_open_rate":`...)
		b = appendFloat(b, s.AvgOpenRate)
		b = append(b, `,"avg_click_rate":`...)
		b = appendFloat(b, s.AvgClickRate)
		return append(b, '}')
	}
	return appendObject(b, object{
		{"avg_open_rate", s.AvgOpenRate},
		{"avg_click_rate", s.AvgClickRate},
	}, sel)
}

func appendTags(b []byte, tags []Tag, sel *fieldSelection) []byte {
	b = append(b, '[')
	for i, t := range tags {
		if i > 0 {
			b = append(b, ',')
		}
		if sel == nil {
			b = append(b, `{"id":`...)
			b = strconv.AppendInt(b, t.ID, 10)
			b = append(b, `,"name":`...)
			b = appendString(b, t.Name)
			b = append(b, '}')
			continue
		}
		b = appendObject(b, object{{"id", t.ID}, {"name", t.Name}}, sel)
	}
	return append(b, ']')
}

func appendMergeFields(b []byte, mf map[string]any, sel *fieldSelection) []byte {
	b = append(b, '{')
	first := true
	write := func(k string, v any) {
		if _, ok := sel.child(k, true); !ok {
			return
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
		b = appendAny(b, v)
	}
	standard := 0
	for _, k := range standardMergeTags {
		if v, ok := mf[k]; ok {
			write(k, v)
			standard++
		}
	}
	if len(mf) > standard {
		var extra []string
		for k := range mf {
			if !slices.Contains(standardMergeTags[:], k) {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		for _, k := range extra {
			write(k, mf[k])
		}
	}
	return append(b, '}')
}

func appendInterests(b []byte, in map[string]bool, sel *fieldSelection) []byte {
	var buf [8]string
	keys := buf[:0]
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	first := true
	for _, k := range keys {
		if _, ok := sel.child(k, true); !ok {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
		b = strconv.AppendBool(b, in[k])
	}
	return append(b, '}')
}

func appendTimeString(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = appendTime(b, t)
	return append(b, '"')
}

// appendAny writes the scalar types members and lists hold; anything else
// goes through encoding/json.
func appendAny(b []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return appendString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case float64:
		return appendFloat(b, v)
	case json.Number:
		if v == "" {
			return append(b, '0')
		}
		return append(b, v...)
	case nil:
		// The API sends "" rather than null for empty values.
		return append(b, `""`...)
	}
	enc, err := json.Marshal(v)
	if err != nil {
		return append(b, `""`...)
	}
	return append(b, enc...)
}

func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. UTF-8 passes through unescaped
// (names like Zoë or 山田 stay readable); invalid bytes become U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript; escape
		// them as encoding/json does.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
