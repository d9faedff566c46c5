package configsource

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/chimport/chimport/internal/awstest"
	"github.com/chimport/chimport/internal/config"
	"github.com/google/go-cmp/cmp"
)

// s3rver starts the emulator, points the SDK environment at it, and creates
// bucket holding objects (key -> content).
func s3rver(t *testing.T, bucket string, objects map[string][]byte) {
	t.Helper()
	awstest.Env(t, map[string]string{"S3": awstest.S3(t)})
	ctx := awstest.WaitContext(t, 30*time.Second)
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	// The emulator lives as long as the test binary: with -count=N the
	// bucket is there from the previous round.
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		t.Fatalf("CreateBucket: %v", err)
	}
	for key, body := range objects {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("PutObject %s: %v", key, err)
		}
	}
}

func TestReadS3(t *testing.T) {
	data, err := os.ReadFile("testdata/chimport.yaml")
	if err != nil {
		t.Fatal(err)
	}
	odd := "dir/with space/%41?x=1#frag.yaml"
	s3rver(t, "configs", map[string][]byte{"prod/chimport.yaml": data, odd: []byte("odd: key\n"), "empty.yaml": {}})
	ctx := awstest.WaitContext(t, 30*time.Second)

	tests := []struct {
		location string
		want     []byte
	}{
		{"s3://configs/prod/chimport.yaml", data},
		{"s3://configs/" + odd, []byte("odd: key\n")},
		{"s3://configs/empty.yaml", nil},
	}
	for _, tt := range tests {
		got, err := Read(ctx, tt.location, os.LookupEnv)
		if err != nil {
			t.Errorf("Read(%s): %v", tt.location, err)
			continue
		}
		if !bytes.Equal(got, tt.want) {
			t.Errorf("Read(%s) = %q, want %q", tt.location, got, tt.want)
		}
	}
}

// The same file gives the same Config whether it comes from disk or S3.
func TestLoadFromS3EqualsLocal(t *testing.T) {
	data, err := os.ReadFile("testdata/chimport.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s3rver(t, "equal", map[string][]byte{"chimport.yaml": data})
	ctx := awstest.WaitContext(t, 30*time.Second)
	vars := map[string]string{"MAILCHIMP_API_KEY": "0123456789abcdef-us6", "TARGET_API_KEY": "tgt-secret"}
	env := func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		return os.LookupEnv(name) // the endpoint variables awstest.Env set
	}

	fromS3Bytes, err := Read(ctx, "s3://equal/chimport.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	fromS3, err := config.Parse(fromS3Bytes, "s3://equal/chimport.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := config.Load("testdata/chimport.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fromFile, fromS3); diff != "" {
		t.Errorf("S3 config differs from the file's (-file +s3):\n%s", diff)
	}
	viaLoad, err := Load(ctx, "s3://equal/chimport.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fromFile, viaLoad); diff != "" {
		t.Errorf("Load differs from the file's (-file +Load):\n%s", diff)
	}
	if fromS3.Alerts.SNSTopicARN == "" || fromS3.Connections[0].Target.BatchSize != 500 {
		t.Errorf("config not read in full: %+v", fromS3)
	}

	// Problems in an S3 config name the S3 location.
	s3rver(t, "broken", map[string][]byte{"c.yaml": []byte("connections: []\n")})
	_, err = Load(ctx, "s3://broken/c.yaml", env)
	if want := "config s3://broken/c.yaml: 1 problem:\n  connections: required (line 1)"; err == nil || err.Error() != want {
		t.Errorf("Load = %v, want\n%s", err, want)
	}
}

func TestReadS3Errors(t *testing.T) {
	s3rver(t, "errors", map[string][]byte{
		"big.yaml":  bytes.Repeat([]byte("#"), MaxSize+1),
		"full.yaml": bytes.Repeat([]byte("#"), MaxSize),
	})
	ctx := awstest.WaitContext(t, 30*time.Second)
	tests := []struct {
		name, location string
		setenv         map[string]string
		want           []string // in the message
	}{
		{"missing key", "s3://errors/nope.yaml", nil, []string{"config s3://errors/nope.yaml: 1 problem:", "NoSuchKey", checkAccess}},
		{"missing bucket", "s3://no-such-bucket/chimport.yaml", nil, []string{"config s3://no-such-bucket/chimport.yaml:", "NoSuchBucket", checkAccess}},
		{"too large", "s3://errors/big.yaml", nil, []string{"the object is 1048577 bytes; a chimport config is a few kilobytes (at most 1048576 bytes): check the key"}},
		{"unknown access key", "s3://errors/full.yaml", map[string]string{"AWS_ACCESS_KEY_ID": "AKIAWRONG"}, []string{"InvalidAccessKeyId", "check the AWS credentials"}},
		{"no region and no endpoint", "s3://errors/full.yaml", map[string]string{"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_ENDPOINT_URL_S3": ""},
			[]string{"no AWS region is set: set AWS_REGION to the bucket's region"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.setenv {
				t.Setenv(k, v)
			}
			_, err := Read(ctx, tt.location, os.LookupEnv)
			var cerr *config.Error
			if !errors.As(err, &cerr) || cerr.Source != tt.location {
				t.Fatalf("Read = %T %v, want a *config.Error naming %s", err, err, tt.location)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "\n  \n") || strings.Count(err.Error(), "\n") != 1 {
				t.Errorf("want one problem line:\n%v", err)
			}
		})
	}

	// Exactly MaxSize is still fine.
	got, err := Read(ctx, "s3://errors/full.yaml", os.LookupEnv)
	if err != nil || len(got) != MaxSize {
		t.Errorf("Read of a %d-byte object = %d bytes, %v", MaxSize, len(got), err)
	}
}

// The global AWS_ENDPOINT_URL reaches the emulator as well as the S3 one.
func TestReadS3GlobalEndpoint(t *testing.T) {
	s3rver(t, "global", map[string][]byte{"c.yaml": []byte("x")})
	ctx := awstest.WaitContext(t, 30*time.Second)
	endpoint := os.Getenv("AWS_ENDPOINT_URL_S3")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	if got, err := Read(ctx, "s3://global/c.yaml", os.LookupEnv); err != nil || string(got) != "x" {
		t.Errorf("Read with AWS_ENDPOINT_URL = %q, %v", got, err)
	}
}

// Path style goes with a custom endpoint only: real S3 wants virtual-hosted
// requests, S3-compatible stores path-style ones. (The emulator cannot show
// the difference: on an IP address the SDK uses path style anyway.)
func TestCustomEndpoint(t *testing.T) {
	tests := []struct {
		name string
		cfg  aws.Config
		env  map[string]string
		want bool
	}{
		{"AWS", aws.Config{}, nil, false},
		{"empty variables", aws.Config{}, map[string]string{"AWS_ENDPOINT_URL_S3": "", "AWS_ENDPOINT_URL": ""}, false},
		{"S3 endpoint", aws.Config{}, map[string]string{"AWS_ENDPOINT_URL_S3": "http://minio:9000"}, true},
		{"global endpoint", aws.Config{}, map[string]string{"AWS_ENDPOINT_URL": "http://minio:9000"}, true},
		{"another service's endpoint", aws.Config{}, map[string]string{"AWS_ENDPOINT_URL_SNS": "http://goaws:4100"}, false},
		{"endpoint from the shared config", aws.Config{BaseEndpoint: aws.String("http://minio:9000")}, nil, true},
	}
	for _, tt := range tests {
		lookup := func(name string) (string, bool) { v, ok := tt.env[name]; return v, ok }
		if got := customEndpoint(tt.cfg, lookup); got != tt.want {
			t.Errorf("%s: customEndpoint = %v, want %v", tt.name, got, tt.want)
		}
	}
}
