package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrBadURL is wrapped by every error about the form of a `state:` URL, so
// the CLI can report it as a configuration mistake.
var ErrBadURL = errors.New("state: bad store URL")

const urlForms = "sqlite://FILE (relative to the current directory) or sqlite:///ABSOLUTE/FILE"

// Open opens the store named by a config `state:` URL:
//
//	sqlite://chimport.db                 chimport.db in the current directory
//	sqlite://data/chimport.db            a relative path
//	sqlite:///var/lib/chimport/state.db  an absolute path
//
// Everything after "sqlite://" is the file path, taken literally (no
// percent-decoding, no query parameters). "dynamodb://..." is recognised
// but not available yet.
func Open(ctx context.Context, rawURL string) (Store, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("%w %q: want %s", ErrBadURL, rawURL, urlForms)
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		if rest == "" {
			return nil, fmt.Errorf("%w %q: no file path; want %s", ErrBadURL, rawURL, urlForms)
		}
		if strings.ContainsRune(rest, '?') {
			return nil, fmt.Errorf("%w %q: query parameters are not supported; want %s", ErrBadURL, rawURL, urlForms)
		}
		s, err := OpenSQLite(ctx, rest)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "dynamodb":
		return nil, fmt.Errorf("%w %q: the DynamoDB store is not available yet; use %s", ErrBadURL, rawURL, urlForms)
	default:
		return nil, fmt.Errorf("%w %q: unsupported scheme %q; want %s", ErrBadURL, rawURL, scheme, urlForms)
	}
}
