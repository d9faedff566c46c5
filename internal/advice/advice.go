package advice

import (
	"unicode"
	"unicode/utf8"
)

// Advice is what failed and what to do about it. Every field is plain text
// free of secrets: it goes into error messages, logs and alerts.
type Advice struct {
	// Problem says what failed, as a phrase that fits a subject line:
	// "Mailchimp rejected the API key".
	Problem string
	// Action says what to do, in sentences that start with a verb and name
	// the config field to look at: "Check mailchimp.api_key ...".
	Action string
	// Status is the HTTP status behind the problem; 0 if there is none.
	Status int
}

// String is the advice on one line, as an error message ends with it:
// "Mailchimp rejected the API key: check mailchimp.api_key ...".
func (a Advice) String() string {
	return a.Problem + ": " + lowerFirst(a.Action)
}

// Capitalize upper-cases the first letter of s, so that a Problem can
// start a sentence.
func Capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}
