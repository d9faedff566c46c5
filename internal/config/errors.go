package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Field is the path of the field, e.g. "connections[1].mailchimp.list_id",
	// or "" for a problem with the file as a whole. In a directory's
	// problem, connections[N] counts the connections of Source.
	Field string
	// Message says what is wrong, and never contains a secret value. For a
	// problem without a Source it already ends in "(line N)" when the
	// problem has a line; with a Source, String puts the place in front.
	Message string
	// Line is the line the problem is about, 0 when there is none (a missing
	// field has no line).
	Line int
	// Source is the file the problem is in when the configuration is a
	// directory of fragments (LoadDir), or "" for the Error's Source (one
	// file, or a problem with the directory as a whole).
	Source string
}

// String is "field: message", or for a problem in one of a directory's
// files "file:line: field: message", a place editors and terminals jump to.
func (p Problem) String() string {
	s := p.Message
	if p.Field != "" {
		s = p.Field + ": " + s
	}
	switch {
	case p.Source == "":
		return s
	case p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.Source, p.Line, s)
	}
	return p.Source + ": " + s
}

// Error is every problem found in one configuration. main maps it to the
// "bad configuration" exit code with errors.As.
type Error struct {
	// Source names the configuration, normally the file's or directory's
	// path; a directory's problems name their own file.
	Source   string
	Problems []Problem
	// Err is the underlying error when the file could not be read at all, so
	// errors.Is(err, fs.ErrNotExist) works.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.Source != "" {
		b.WriteString(" " + e.Source)
	}
	noun := "problems"
	if len(e.Problems) == 1 {
		noun = "problem"
	}
	fmt.Fprintf(&b, ": %d %s:", len(e.Problems), noun)
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Paths are built the same way everywhere so that problems found while
// decoding and problems found by Validate can be matched to the same node.

// joinKey appends a mapping key to a field path. Keys that would read
// ambiguously after a dot (empty, dots, spaces...) are quoted in brackets.
func joinKey(path, key string) string {
	if !plainKey(key) {
		return fmt.Sprintf("%s[%q]", path, key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func joinIndex(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// parentPath strips the last segment of a path; ok is false for the root.
func parentPath(p string) (parent string, ok bool) {
	if p == "" {
		return "", false
	}
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i], true
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i], true
	}
	return "", true
}
