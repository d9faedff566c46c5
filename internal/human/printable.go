package human

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable is s on one line, safe to show on a terminal, in a log, a
// chat message or an HTML cell: a target's answer may hold anything, and
// a line break, an escape sequence or a bidi override in it must not
// forge a line of output or hide a part of it. Control and format
// characters become escapes (\n, \t, \x1b, \u202e), invalid UTF-8 becomes
// U+FFFD, and everything else, quotes and backslashes included, stays as
// it is, so a JSON answer reads as the target sent it.
func Printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsGraphic(r): // letters, marks, numbers, punctuation, symbols, spaces
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// PrintableLines is Printable for each line of s: text whose lines mean
// something (errors joined with errors.Join) keeps them, and nothing else
// of a control character.
func PrintableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Printable(l)
	}
	return strings.Join(lines, "\n")
}
