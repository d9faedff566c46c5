package human

import "testing"

func TestPrintable(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"error":"email is invalid","field":"email"}`, `{"error":"email is invalid","field":"email"}`},
		{"line one\nline two\r\n\tindented", `line one\nline two\r\n\tindented`},
		{"colour \x1b[31mred\x1b[0m", `colour \x1b[31mred\x1b[0m`},
		{"right\u202eto left", `right\u202eto left`},
		{"naïve café — 日本", "naïve café — 日本"},
		{"cut mid-rune \xe6\x97", "cut mid-rune \ufffd\ufffd"},
		{"nul\x00 del\x7f", `nul\x00 del\x7f`},
		{"sep\u2028arator", `sep\u2028arator`},
		{"", ""},
	} {
		if got := Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPrintableLines(t *testing.T) {
	got := PrintableLines("one\x1b[2J\ntwo\r\u202e")
	if want := "one\\x1b[2J\ntwo\\r\\u202e"; got != want {
		t.Errorf("PrintableLines = %q, want %q", got, want)
	}
}
