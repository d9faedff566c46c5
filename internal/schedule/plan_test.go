package schedule

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/clock"
)

func TestNextRun(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// A tenth of the period, so each case also shows which period (for
	// cron: which gap between ticks) the jitter was sized from.
	tenth := func(_ string, every time.Duration) time.Duration { return every / 10 }
	now := at("2026-03-10T10:07:00Z")
	est := time.FixedZone("EST", -5*3600)
	tests := []struct {
		name string
		conn Connection
		last time.Time
		loc  *time.Location
		want time.Time
	}{
		{"every, never ran: now plus jitter", Connection{Every: 90 * time.Minute}, time.Time{}, nil, at("2026-03-10T10:16:00Z")},
		{"every, from the last attempt", Connection{Every: 90 * time.Minute}, at("2026-03-10T09:00:30Z"), nil, at("2026-03-10T10:39:30Z")},
		{"every, overdue stays in the past (due now)", Connection{Every: time.Hour}, at("2026-03-10T07:00:00Z"), nil, at("2026-03-10T08:06:00Z")},
		{"cron, never ran: next tick after now", Connection{Cron: "*/15 * * * *"}, time.Time{}, nil, at("2026-03-10T10:16:30Z")},
		{"cron, from the last attempt", Connection{Cron: "@hourly"}, at("2026-03-10T09:03:10Z"), nil, at("2026-03-10T10:06:00Z")},
		{"cron, a start exactly on its tick", Connection{Cron: "0 * * * *"}, at("2026-03-10T09:00:00Z"), nil, at("2026-03-10T10:06:00Z")},
		{"cron, uneven gaps size the jitter", Connection{Cron: "0 9,17 * * *"}, at("2026-03-10T09:00:30Z"), nil, at("2026-03-10T18:36:00Z")},
		{"cron with seconds", Connection{Cron: "*/3 * * * * *"}, at("2026-03-10T10:00:03.2Z"), nil, at("2026-03-10T10:00:06.3Z")},
		{"cron in a time zone", Connection{Cron: "0 9 * * *"}, at("2026-03-10T14:00:10Z"), est, at("2026-03-11T16:24:00Z")},
		{"cron, overdue: the tick after the last attempt", Connection{Cron: "@hourly"}, at("2026-03-10T06:01:00Z"), nil, at("2026-03-10T07:06:00Z")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := tt.loc
			if loc == nil {
				loc = time.UTC
			}
			tt.conn.Name = "news"
			if tt.conn.Every == 0 {
				tt.conn.Every = DefaultEvery
			}
			got, err := nextRun(tt.conn, tt.last, now, tenth, loc)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("nextRun = %s, want %s", got.UTC().Format(time.RFC3339Nano), tt.want.Format(time.RFC3339Nano))
			}
		})
	}
}

func TestDefaultJitterStableAndBounded(t *testing.T) {
	tests := []struct {
		every, bound time.Duration
	}{
		{90 * time.Minute, MaxJitter},
		{time.Hour, MaxJitter},
		{20 * time.Minute, 2 * time.Minute},
		{3 * time.Second, 300 * time.Millisecond},
		{5, 0}, // too short to spread
	}
	for _, tt := range tests {
		for i := range 1000 {
			name := fmt.Sprintf("acct-%d/list-%d", i/10, i%10)
			j := DefaultJitter(name, tt.every)
			if j < 0 || (j >= tt.bound && tt.bound > 0) || (tt.bound == 0 && j != 0) {
				t.Fatalf("DefaultJitter(%q, %s) = %s, want in [0, %s)", name, tt.every, j, tt.bound)
			}
			if again := DefaultJitter(name, tt.every); again != j {
				t.Fatalf("DefaultJitter(%q) changed: %s then %s", name, j, again)
			}
		}
	}
	// Pinned, so a change of hash (which would move every connection's
	// rhythm in a mixed-version pool) shows up here.
	if got, want := DefaultJitter("news", time.Hour), 30448739155*time.Nanosecond; got != want {
		t.Errorf("DefaultJitter(news, 1h) = %s, want %s", got, want)
	}
}

func TestDefaultJitterSpreadsThousands(t *testing.T) {
	// 10,000 connections (1,000 keys x 10 lists, names alike but for a
	// digit) every 90 minutes: their offsets cover 5 minutes, and no
	// second gets many more than its share (10000/300 = 33).
	perSecond := map[time.Duration]int{}
	for i := range 10000 {
		j := DefaultJitter(fmt.Sprintf("key-%d/list-%d", i/10, i%10), 90*time.Minute)
		perSecond[j.Truncate(time.Second)]++
	}
	busiest := 0
	for _, n := range perSecond {
		busiest = max(busiest, n)
	}
	if len(perSecond) < 295 || busiest > 66 {
		t.Errorf("offsets fill %d of 300 seconds, busiest second has %d starts; want >= 295 and <= 66", len(perSecond), busiest)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	cfg := Config{Leases: newFakeLeases(), Run: func(context.Context, string, Lease) error { return nil },
		Clock: clock.NewFake(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)), Logger: quiet()}
	_, err := New(cfg, []Connection{
		{Name: "ok", Cron: "@hourly"},
		{Name: "news", Cron: "61 * * * *"},
		{Name: "shop", Cron: "* * *"},
		{Name: "feb", Cron: "0 0 30 2 *"},
		{Name: "old", Cron: "0 0 1 1 * 2020"},
		{Name: "neg", Every: -time.Minute},
		{Name: "ok"},
		{},
	})
	if err == nil {
		t.Fatal("New accepted bad connections")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		`schedule: connection "news": invalid cron expression "61 * * * *"`,
		`schedule: connection "shop": invalid cron expression "* * *"`,
		`schedule: connection "feb": cron expression "0 0 30 2 *" never fires`,
		`schedule: connection "old": cron expression "0 0 1 1 * 2020" never fires`,
		`schedule: connection "neg": every -1m0s is negative`,
		`schedule: connection "ok" is listed twice`,
		`schedule: connection 7 has no name`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("error %d = %q, want it to start with %q", i, lines[i], want[i])
		}
	}
	_, err = New(Config{LeaseTTL: time.Millisecond}, nil)
	for _, field := range []string{"Leases", "Run", "LeaseTTL"} {
		if err == nil || !strings.Contains(err.Error(), "Config."+field) {
			t.Errorf("New with no Leases, no Run, a 1ms LeaseTTL = %v; want %s named", err, field)
		}
	}
}

func TestNewAppliesDefaults(t *testing.T) {
	s, err := New(Config{Leases: newFakeLeases(), Run: func(context.Context, string, Lease) error { return nil }},
		[]Connection{{Name: "a"}, {Name: "b", Every: time.Minute, Cron: "@daily"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.conns[0].Every != DefaultEvery || s.conns[1].Cron != "@daily" {
		t.Errorf("connections = %+v", s.conns)
	}
	c := s.cfg
	if c.LeaseTTL != DefaultLeaseTTL || c.MaxParallel != DefaultMaxParallel || c.Grace != DefaultGrace ||
		c.Location != time.UTC || c.Owner == "" || c.Clock == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	if _, ok := s.Next("a"); ok {
		t.Errorf("Next(a) known before Run")
	}
}
