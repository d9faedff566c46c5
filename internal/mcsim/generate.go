package mcsim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// generator makes realistic members for one list from a seed. Same seed and
// same start time give the same members, call for call.
type generator struct {
	rng    *rand.Rand
	listID string
	start  time.Time // the clock when the list was created, truncated to the second
	next   int       // sequence number that keeps generated emails unique

	// Members share these read-only maps: stored members are never mutated
	// in place (mutations clone first), and sharing saves memory on large
	// lists.
	interestSets []map[string]bool
	tags         []Tag
}

// A name and the ASCII form used in its email address.
type name struct{ text, ascii string }

// Non-ASCII names are deliberate: a sync that mangles encodings shows up.
var firstNames = []name{
	{"José", "jose"}, {"Zoë", "zoe"}, {"Łukasz", "lukasz"}, {"太郎", "taro"},
	{"Søren", "soren"}, {"François", "francois"}, {"Ana", "ana"}, {"Björk", "bjork"},
	{"Иван", "ivan"}, {"Αλέξανδρος", "alexandros"}, {"Đorđe", "djordje"}, {"Mary-Jane", "mary-jane"},
	{"Emma", "emma"}, {"Liam", "liam"}, {"Olivia", "olivia"}, {"Noah", "noah"},
	{"Ava", "ava"}, {"Lucas", "lucas"}, {"Mia", "mia"}, {"Ethan", "ethan"},
	{"Sofia", "sofia"}, {"Mateo", "mateo"}, {"Chloé", "chloe"}, {"Nguyễn Văn", "nguyen"},
	{"Priya", "priya"}, {"Wei", "wei"}, {"Fatima", "fatima"}, {"Oğuz", "oguz"},
}

var lastNames = []name{
	{"Ørsted", "orsted"}, {"山田", "yamada"}, {"Müller", "muller"}, {"García", "garcia"},
	{"O'Brien", "obrien"}, {"Kowalski", "kowalski"}, {"Smith", "smith"}, {"Johnson", "johnson"},
	{"Dubois", "dubois"}, {"Rossi", "rossi"}, {"Çelik", "celik"}, {"Nowak", "nowak"},
	{"Petrović", "petrovic"}, {"Andersson", "andersson"}, {"Brown", "brown"}, {"Tanaka", "tanaka"},
	{"da Silva", "dasilva"}, {"Jones", "jones"}, {"Williams", "williams"}, {"Lefèvre", "lefevre"},
	{"", ""}, // some members never gave a last name
}

var (
	domains      = []string{"example.com", "example.org", "example.net", "mail.example.com"}
	languages    = []string{"", "", "", "en", "en", "fr", "de", "es", "ja", "pl"}
	emailClients = []string{"", "", "Gmail", "Apple Mail", "Outlook", "Yahoo! Mail"}
	sources      = []string{"API - Generic", "Hosted Signup Form", "Import", "Admin Add", "API - Integration"}
	tagNames     = []string{"customer", "newsletter", "vip", "webinar 2024", "trial"}
	cities       = []Location{
		{Latitude: 40.7128, Longitude: -74.006, GMTOff: -5, DSTOff: -4, CountryCode: "US", Timezone: "America/New_York"},
		{Latitude: 51.5072, Longitude: -0.1276, GMTOff: 0, DSTOff: 1, CountryCode: "GB", Timezone: "Europe/London"},
		{Latitude: 35.6762, Longitude: 139.6503, GMTOff: 9, DSTOff: 9, CountryCode: "JP", Timezone: "Asia/Tokyo"},
		{Latitude: 52.2297, Longitude: 21.0122, GMTOff: 1, DSTOff: 2, CountryCode: "PL", Timezone: "Europe/Warsaw"},
		{Latitude: -23.5505, Longitude: -46.6333, GMTOff: -3, DSTOff: -3, CountryCode: "BR", Timezone: "America/Sao_Paulo"},
		{Latitude: 55.6761, Longitude: 12.5683, GMTOff: 1, DSTOff: 2, CountryCode: "DK", Timezone: "Europe/Copenhagen"},
	}
)

const twoYears = 2 * 365 * 24 * time.Hour

func newGenerator(listID string, seed int64, start time.Time) *generator {
	g := &generator{
		rng:    newRand(seed),
		listID: listID,
		start:  start.UTC().Truncate(time.Second),
	}
	interestIDs := []string{g.hex(10), g.hex(10), g.hex(10)}
	for mask := range 1 << len(interestIDs) {
		set := make(map[string]bool, len(interestIDs))
		for i, id := range interestIDs {
			set[id] = mask&(1<<i) != 0
		}
		g.interestSets = append(g.interestSets, set)
	}
	for _, n := range tagNames {
		g.tags = append(g.tags, Tag{ID: 1_000_000 + g.rng.Int64N(9_000_000), Name: n})
	}
	return g
}

func (g *generator) hex(n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteByte(hexDigits[g.rng.IntN(16)])
	}
	return sb.String()
}

func (g *generator) pick(s []string) string { return s[g.rng.IntN(len(s))] }

// pickStatus draws a status: mostly subscribed, like a real audience.
func (g *generator) pickStatus() string {
	switch p := g.rng.IntN(100); {
	case p < 80:
		return StatusSubscribed
	case p < 88:
		return StatusUnsubscribed
	case p < 91:
		return StatusCleaned
	case p < 94:
		return StatusPending
	case p < 97:
		return StatusTransactional
	default:
		return StatusArchived
	}
}

// pastTime returns a second-aligned time up to maxAgo before g.start, never
// at or after it.
func (g *generator) pastTime(maxAgo time.Duration) time.Time {
	secs := int64(maxAgo / time.Second)
	return g.start.Add(-time.Duration(1+g.rng.Int64N(secs)) * time.Second)
}

func (g *generator) ip() string {
	return fmt.Sprintf("%d.%d.%d.%d", 1+g.rng.IntN(222), g.rng.IntN(256), g.rng.IntN(256), 1+g.rng.IntN(254))
}

// member generates the next member. lastChanged zero means "somewhere in the
// two years before start"; churn passes the current time instead.
func (g *generator) member(lastChanged time.Time) Member {
	first := firstNames[g.rng.IntN(len(firstNames))]
	last := lastNames[g.rng.IntN(len(lastNames))]
	email := g.email(first, last)
	status := g.pickStatus()
	if lastChanged.IsZero() {
		lastChanged = g.pastTime(twoYears)
	}

	m := Member{
		EmailAddress:  email,
		UniqueEmailID: g.hex(10),
		ContactID:     g.hex(32),
		FullName:      strings.TrimSpace(first.text + " " + last.text),
		WebID:         100_000_000 + g.rng.Int64N(900_000_000),
		EmailType:     "html",
		Status:        status,
		MergeFields: map[string]any{
			"FNAME":    first.text,
			"LNAME":    last.text,
			"ADDRESS":  "",
			"PHONE":    "",
			"BIRTHDAY": "",
			"SCORE":    g.rng.IntN(101),
		},
		Interests:    g.interestSets[g.rng.IntN(len(g.interestSets))],
		Stats:        MemberStats{AvgOpenRate: float64(g.rng.IntN(101)) / 100, AvgClickRate: float64(g.rng.IntN(31)) / 100},
		MemberRating: 1 + g.rng.IntN(5),
		LastChanged:  lastChanged,
		Language:     g.pick(languages),
		VIP:          g.rng.IntN(50) == 0,
		EmailClient:  g.pick(emailClients),
		Source:       g.pick(sources),
		ListID:       g.listID,
	}
	m.ID = MemberID(email)
	if g.rng.IntN(10) == 0 {
		m.EmailType = "text"
	}
	if g.rng.IntN(3) == 0 {
		m.MergeFields["PHONE"] = fmt.Sprintf("+1 555-01%02d", g.rng.IntN(100))
	}
	if g.rng.IntN(2) == 0 {
		m.MergeFields["BIRTHDAY"] = fmt.Sprintf("%02d/%02d", 1+g.rng.IntN(12), 1+g.rng.IntN(28))
	}
	// Opt-in happened before the last change; pending members have not
	// confirmed yet, and imported members have no signup record.
	if status != StatusPending {
		m.TimestampOpt = lastChanged.Add(-time.Duration(g.rng.Int64N(int64(90*24*time.Hour/time.Second))) * time.Second)
		m.IPOpt = g.ip()
	}
	if g.rng.IntN(5) < 3 {
		signup := m.TimestampOpt
		if signup.IsZero() {
			signup = lastChanged
		}
		m.TimestampSignup = signup.Add(-time.Duration(g.rng.IntN(3600)) * time.Second)
		m.IPSignup = g.ip()
	}
	if g.rng.IntN(10) < 7 {
		m.Location = cities[g.rng.IntN(len(cities))]
	}
	for _, t := range g.tags {
		if g.rng.IntN(6) == 0 {
			m.Tags = append(m.Tags, t)
		}
	}
	return m
}

// email makes an address no generated member has had: the sequence number
// in it is new every time.
func (g *generator) email(first, last name) string {
	g.next++
	local := first.ascii
	if last.ascii != "" {
		local += "." + last.ascii
	}
	email := fmt.Sprintf("%s%d@%s", local, g.next, g.pick(domains))
	if g.rng.IntN(20) == 0 {
		// Some people type their address capitalised; the id is still the
		// MD5 of the lower-cased form.
		email = strings.ToUpper(email[:1]) + email[1:]
	}
	return email
}

// newAddress draws an address for a member who moves: a new name and
// domain, as when someone changes employer or provider.
func (g *generator) newAddress() string {
	first := firstNames[g.rng.IntN(len(firstNames))]
	last := lastNames[g.rng.IntN(len(lastNames))]
	return g.email(first, last)
}

// listInfo is the generated, mostly static part of a list resource.
type listInfo struct {
	webID       int64
	name        string
	dateCreated time.Time
}

func (g *generator) listInfo() listInfo {
	return listInfo{
		webID:       100_000 + g.rng.Int64N(900_000),
		name:        "Audience " + g.listID,
		dateCreated: g.start.Add(-twoYears - time.Duration(g.rng.Int64N(365*24*3600))*time.Second),
	}
}

// NewAPIKey returns a key in Mailchimp's form: 32 hex digits, a dash and the
// datacenter ("...-us1"). With a nil r it draws from the global source.
func NewAPIKey(r *rand.Rand) string {
	intN := rand.IntN
	if r != nil {
		intN = r.IntN
	}
	b := make([]byte, 0, 36)
	for range 32 {
		b = append(b, hexDigits[intN(16)])
	}
	return string(b) + "-us1"
}

// newRand returns the deterministic source behind everything random in the
// simulators, so one Seed reproduces a whole run.
func newRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x6d63_7369_6d))
}
