package configsource

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/chimport/chimport/internal/config"
)

// MaxSize bounds an S3 object read as a config. A config is a few
// kilobytes; anything near this is the wrong object, and reading it whole
// would only waste memory.
const MaxSize = 1 << 20

// Read returns the config bytes at location: an s3://bucket/key URL, or a
// local file path (a directory is for Load). lookupEnv is the process environment (nil means empty); it
// decides whether S3 is reached through a custom endpoint (see readS3). AWS
// credentials and the region come from the standard SDK environment.
func Read(ctx context.Context, location string, lookupEnv func(string) (string, bool)) ([]byte, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	scheme, _, isURL := strings.Cut(location, "://")
	switch {
	case !isURL:
		return readLocal(location)
	case strings.EqualFold(scheme, "s3"):
		loc, err := parseS3(location)
		if err != nil {
			return nil, problem(location, err.Error(), nil)
		}
		return readS3(ctx, location, loc, lookupEnv)
	default:
		// Quote only the scheme: the rest may carry credentials.
		return nil, problem(location, "must be a local file path or s3://BUCKET/KEY; "+scheme+":// is not supported", nil)
	}
}

// Load reads the config at location and parses it. A local path is read by
// config.Load, so it may be a directory of fragments; an s3:// location is
// always one object, parsed with config.Parse.
func Load(ctx context.Context, location string, lookupEnv func(string) (string, bool)) (*config.Config, error) {
	if _, _, isURL := strings.Cut(location, "://"); !isURL {
		return config.Load(location, lookupEnv)
	}
	data, err := Read(ctx, location, lookupEnv)
	if err != nil {
		return nil, err
	}
	return config.Parse(data, location, lookupEnv)
}

// readLocal reads a file the way config.Load does, with the same message, so
// errors.Is(err, fs.ErrNotExist) holds for a missing file.
func readLocal(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		reason := err
		var pe *fs.PathError
		if errors.As(err, &pe) {
			reason = pe.Err // the path is already the error's Source
		}
		return nil, problem(path, "cannot read the file: "+reason.Error(), err)
	}
	return data, nil
}

// s3Location is a parsed s3://bucket/key.
type s3Location struct{ bucket, key string }

// parseS3 splits s3://bucket/key by hand: url.Parse would treat ?, # and %
// in a key as syntax, and S3 keys may contain any of them.
func parseS3(location string) (s3Location, error) {
	_, rest, _ := strings.Cut(location, "://")
	bucket, key, _ := strings.Cut(rest, "/")
	switch {
	case bucket == "":
		return s3Location{}, errors.New("must be s3://BUCKET/KEY: the bucket name is missing")
	case strings.ContainsFunc(bucket, func(r rune) bool { return r <= ' ' || r == '?' || r == '#' }):
		return s3Location{}, errors.New("must be s3://BUCKET/KEY: the bucket name has spaces or URL syntax in it")
	case key == "":
		return s3Location{}, errors.New("must be s3://BUCKET/KEY: the object key is missing, e.g. s3://" + bucket + "/chimport.yaml")
	case strings.HasSuffix(key, "/"):
		return s3Location{}, errors.New("names a folder (it ends in /), and only a local --config may be a directory of fragments; " +
			"name one object, e.g. s3://" + bucket + "/" + key + "chimport.yaml")
	}
	return s3Location{bucket: bucket, key: key}, nil
}

// problem is the *config.Error for a config that could not be read.
func problem(location, msg string, err error) *config.Error {
	return &config.Error{Source: location, Problems: []config.Problem{{Message: msg}}, Err: err}
}
