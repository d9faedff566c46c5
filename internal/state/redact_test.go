package state

import "testing"

func TestRedactPassword(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@db/x":                                 "postgres://u:REDACTED@db/x",
		"postgres://u:se/cr@et@db:5432/x?sslmode=require":          "postgres://u:REDACTED@db:5432/x?sslmode=require",
		"postgres://u:s3cr3t?pw@db/x":                              "postgres://u:REDACTED@db/x",
		"postgres://u@db/x?password=s3cr3t&schema=Bad":             "postgres://u@db/x?password=REDACTED&schema=Bad",
		"postgres://db/x?sslpassword=k3y&password=a@b":             "postgres://db/x?sslpassword=REDACTED&password=REDACTED",
		"postgres://u:p@db/x?pass%77ord=s3cr3t&application_name=a": "postgres://u:REDACTED@db/x?pass%77ord=REDACTED&application_name=a",
		"postgres://db/x?application_name=a@b":                     "postgres://db/x?application_name=a@b",
		"sqlite://chimport.db":                                     "sqlite://chimport.db",
		"dynamodb://?region=eu-west-1":                             "dynamodb://?region=eu-west-1",
		"no scheme":                                                "no scheme",
	} {
		if got := RedactPassword(in); got != want {
			t.Errorf("RedactPassword(%q) = %q, want %q", in, got, want)
		}
	}
}
