package advice

import "testing"

func TestString(t *testing.T) {
	a := Advice{Problem: "the target rejected the credentials", Action: "Check target.headers for this connection.", Status: 401}
	if got, want := a.String(), "the target rejected the credentials: check target.headers for this connection."; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestCapitalize(t *testing.T) {
	for in, want := range map[string]string{"": "", "the target": "The target", "Mailchimp": "Mailchimp", "élan": "Élan"} {
		if got := Capitalize(in); got != want {
			t.Errorf("Capitalize(%q) = %q, want %q", in, got, want)
		}
	}
}
