package configsource

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chimport/chimport/internal/config"
	"github.com/google/go-cmp/cmp"
)

func TestReadLocal(t *testing.T) {
	want, err := os.ReadFile("testdata/chimport.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(context.Background(), "testdata/chimport.yaml", nil)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A missing local file fails exactly as config.Load fails on it.
func TestReadLocalMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Read(context.Background(), path, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	_, loadErr := config.Load(path, nil)
	if err == nil || err.Error() != loadErr.Error() {
		t.Errorf("Read error =\n%v\nwant config.Load's\n%v", err, loadErr)
	}
}

func TestReadBadLocations(t *testing.T) {
	tests := []struct{ location, want string }{
		{"s3://", "config s3://: 1 problem:\n  must be s3://BUCKET/KEY: the bucket name is missing"},
		{"s3:///chimport.yaml", "config s3:///chimport.yaml: 1 problem:\n  must be s3://BUCKET/KEY: the bucket name is missing"},
		{"s3://bucket", "config s3://bucket: 1 problem:\n  must be s3://BUCKET/KEY: the object key is missing, e.g. s3://bucket/chimport.yaml"},
		{"s3://bucket/", "config s3://bucket/: 1 problem:\n  must be s3://BUCKET/KEY: the object key is missing, e.g. s3://bucket/chimport.yaml"},
		{"s3://bucket/conf/", "config s3://bucket/conf/: 1 problem:\n  names a folder (it ends in /), and only a local --config may be a directory of fragments; name one object, e.g. s3://bucket/conf/chimport.yaml"},
		{"s3://my bucket/x.yaml", "config s3://my bucket/x.yaml: 1 problem:\n  must be s3://BUCKET/KEY: the bucket name has spaces or URL syntax in it"},
		{"https://user:pw@example.com/c.yaml", "config https://user:pw@example.com/c.yaml: 1 problem:\n  must be a local file path or s3://BUCKET/KEY; https:// is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.location, func(t *testing.T) {
			_, err := Read(context.Background(), tt.location, nil)
			var cerr *config.Error
			if !errors.As(err, &cerr) || cerr.Source != tt.location {
				t.Fatalf("Read(%q) = %T %v, want a *config.Error for the location", tt.location, err, err)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseS3(t *testing.T) {
	tests := []struct {
		location string
		want     s3Location
	}{
		{"s3://b/chimport.yaml", s3Location{"b", "chimport.yaml"}},
		{"S3://b/dir/sub/c.yaml", s3Location{"b", "dir/sub/c.yaml"}},
		// Keys are taken verbatim: no URL decoding, no query, no fragment.
		{"s3://b/a b/%41?x=1#y", s3Location{"b", "a b/%41?x=1#y"}},
	}
	for _, tt := range tests {
		got, err := parseS3(tt.location)
		if err != nil {
			t.Errorf("parseS3(%q): %v", tt.location, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(s3Location{})); diff != "" {
			t.Errorf("parseS3(%q) (-want +got):\n%s", tt.location, diff)
		}
	}
	if !strings.Contains(problem("x", "m", nil).Error(), "config x") {
		t.Error("problem does not name the location")
	}
}
