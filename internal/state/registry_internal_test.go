package state

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeDriver records the loc each function was given. Its Validate refuses
// a loc containing "bad".
func fakeDriver(schemes []string, forms string, seen *[]string) Driver {
	return Driver{
		Schemes: schemes,
		Forms:   forms,
		Validate: func(loc string) error {
			*seen = append(*seen, "validate "+loc)
			if strings.Contains(loc, "bad") {
				return errors.New("bad things in " + loc)
			}
			return nil
		},
		Open: func(_ context.Context, loc string) (Store, error) {
			*seen = append(*seen, "open "+loc)
			return nil, nil
		},
		Init: func(_ context.Context, loc string) (InitReport, error) {
			*seen = append(*seen, "init "+loc)
			return InitReport{Created: []string{loc}}, nil
		},
	}
}

// TestRegistryLookup: the scheme picks the driver in any case, the driver
// gets the rest of the URL literally, and every refusal wraps ErrBadURL
// and lists every form.
func TestRegistryLookup(t *testing.T) {
	var r registry
	var seen []string
	r.register(fakeDriver([]string{"file", "f"}, "file://PATH", &seen))
	r.register(fakeDriver([]string{"cloud"}, "cloud://?q", &seen))

	for _, tt := range []struct {
		url, wantLoc string
		wantSeen     []string
	}{
		{"file:///abs/x.db", "/abs/x.db", []string{"validate /abs/x.db"}},
		{"F://rel/x?y=%zz", "rel/x?y=%zz", []string{"validate rel/x?y=%zz"}},
		{"CLOUD://", "", []string{"validate "}},
	} {
		seen = nil
		d, loc, err := r.lookup(tt.url)
		if err != nil || d == nil || loc != tt.wantLoc {
			t.Errorf("lookup(%q) = %v, %q, %v; want loc %q", tt.url, d, loc, err, tt.wantLoc)
		}
		if diff := cmp.Diff(tt.wantSeen, seen); diff != "" {
			t.Errorf("lookup(%q) calls (-want +got):\n%s", tt.url, diff)
		}
	}

	const want = "; want cloud://?q or file://PATH"
	for url, msg := range map[string]string{
		"file.db":        `state: bad store URL "file.db": no scheme` + want,
		"file:x":         `state: bad store URL "file:x": no scheme` + want,
		"":               `state: bad store URL "": no scheme` + want,
		"postgres://db":  `state: bad store URL "postgres://db": unsupported scheme "postgres"` + want,
		"file://bad.db":  `state: bad store URL "file://bad.db": bad things in bad.db` + want,
		"cloud://?a=bad": `state: bad store URL "cloud://?a=bad": bad things in ?a=bad` + want,
	} {
		_, _, err := r.lookup(url)
		if err == nil || err.Error() != msg || !errors.Is(err, ErrBadURL) {
			t.Errorf("lookup(%q) = %v;\nwant %s, wrapping ErrBadURL", url, err, msg)
		}
	}
}

// TestRegistryForms: the default store's forms come first, the others by
// scheme, however the init functions happened to run.
func TestRegistryForms(t *testing.T) {
	var seen []string
	var r registry
	if got, want := r.forms(), "a registered store, but this program links none (import a package of internal/state)"; got != want {
		t.Errorf("no drivers: %q, want %q", got, want)
	}
	r.register(fakeDriver([]string{"zeta"}, "Z", &seen))
	if got := r.forms(); got != "Z" {
		t.Errorf("one driver: %q", got)
	}
	r.register(fakeDriver([]string{"beta"}, "B", &seen))
	def := fakeDriver([]string{"yak"}, "Y", &seen)
	def.Default = true
	r.register(def)
	r.register(fakeDriver([]string{"alpha"}, "A", &seen))
	if got, want := r.forms(), "Y, A, B or Z"; got != want {
		t.Errorf("forms = %q, want %q", got, want)
	}
}

func TestRegisterRefuses(t *testing.T) {
	var seen []string
	ok := fakeDriver([]string{"taken"}, "taken://", &seen)
	ok.Default = true
	tests := map[string]func(d *Driver){
		"no schemes":       func(d *Driver) { d.Schemes = nil },
		"no forms":         func(d *Driver) { d.Forms = "" },
		"no Validate":      func(d *Driver) { d.Validate = nil },
		"no Open":          func(d *Driver) { d.Open = nil },
		"no Init":          func(d *Driver) { d.Init = nil },
		"a taken scheme":   func(d *Driver) { d.Schemes = []string{"new", "taken"} },
		"upper case":       func(d *Driver) { d.Schemes = []string{"New"} },
		"a colon":          func(d *Driver) { d.Schemes = []string{"new:"} },
		"an empty scheme":  func(d *Driver) { d.Schemes = []string{""} },
		"a second default": func(d *Driver) { d.Schemes, d.Default = []string{"new"}, true },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			var r registry
			r.register(ok)
			d := fakeDriver([]string{"new"}, "new://", &seen)
			edit(&d)
			defer func() {
				if recover() == nil {
					t.Error("registered")
				}
				if _, _, err := r.lookup("new://x"); err == nil {
					t.Error("a refused driver's scheme resolves")
				}
			}()
			r.register(d)
		})
	}
}

// TestBadURLHidesPassword: a refused URL is quoted in errors, which reach
// logs, so a password in it is replaced, wherever it ends.
func TestBadURLHidesPassword(t *testing.T) {
	for url, want := range map[string]string{
		"postgres://app:s3cret@db:5432/chimport":      "postgres://app:REDACTED@db:5432/chimport",
		"postgres://app:s3/cr@t@db/chimport?schema=x": "postgres://app:REDACTED@db/chimport?schema=x",
		"postgres://app@db/chimport":                  "postgres://app@db/chimport",
		"sqlite:///var/lib/a@b.db":                    "sqlite:///var/lib/a@b.db",
		"dynamodb://?region=eu-west-1":                "dynamodb://?region=eu-west-1",
	} {
		var r registry
		_, _, err := r.lookup(url)
		var bad *BadURLError
		if !errors.As(err, &bad) || bad.URL != want {
			t.Errorf("lookup(%q) = %v; want a *BadURLError quoting %q", url, err, want)
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "s3/cr@t") {
			t.Errorf("lookup(%q): %q shows the password", url, err)
		}
	}
}
