package config

import (
	"errors"
	"slices"
	"strings"
)

// expand replaces each ${NAME} in s with the variable's value and each $$
// with a single $. A $ followed by anything else is kept, so "pa$word" needs
// no escaping. It returns every unset variable (once each, in order) rather
// than stopping at the first, and an error for a malformed reference. The
// error never quotes s, which may be a secret.
func expand(s string, lookupEnv func(string) (string, bool)) (out string, unset []string, err error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", nil, errors.New("has ${ without a closing } (write $$ for a literal $)")
			}
			name := s[i+2 : i+2+end]
			if !validEnvName(name) {
				return "", nil, errors.New("has a ${...} whose name is not letters, digits and _ (write $$ for a literal $)")
			}
			v, ok := lookupEnv(name)
			if !ok {
				if !slices.Contains(unset, name) {
					unset = append(unset, name)
				}
			}
			b.WriteString(v)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), unset, nil
}

func validEnvName(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
