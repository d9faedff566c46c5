package configsource

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// checkAccess is the advice for every "you may not have it" answer: S3 says
// AccessDenied rather than NoSuchKey when the caller may not list the bucket.
const checkAccess = "check the bucket, key and the task role's s3:GetObject permission"

// readS3 fetches one object with the standard SDK configuration.
//
// A custom endpoint (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL: an emulator,
// MinIO, Ceph, R2...) gets path-style requests, http://host/bucket/key:
// S3-compatible stores rarely serve virtual-hosted bucket.host names.
func readS3(ctx context.Context, location string, loc s3Location, lookupEnv func(string) (string, bool)) ([]byte, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, problem(location, "cannot load the AWS configuration: "+err.Error(), err)
	}
	custom := customEndpoint(cfg, lookupEnv)
	if cfg.Region == "" {
		if !custom {
			return nil, problem(location, "no AWS region is set: set AWS_REGION to the bucket's region", nil)
		}
		cfg.Region = "us-east-1" // S3-compatible stores mostly ignore it, but signing needs one
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = custom
		// S3-compatible stores send no checksums; the SDK would print a
		// line about it to stderr on every read. Checksums that are sent
		// are still checked.
		o.DisableLogOutputChecksumValidationSkipped = true
	})

	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(loc.bucket), Key: aws.String(loc.key)})
	if err != nil {
		return nil, problem(location, s3Message(err, cfg.Region), err)
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > MaxSize {
		return nil, problem(location, tooLarge(n), nil)
	}
	data, err := io.ReadAll(io.LimitReader(out.Body, MaxSize+1))
	if err != nil {
		return nil, problem(location, "reading the object failed part-way: "+err.Error(), err)
	}
	if len(data) > MaxSize {
		return nil, problem(location, tooLarge(-1), nil)
	}
	return data, nil
}

// customEndpoint reports whether S3 is reached somewhere other than AWS.
func customEndpoint(cfg aws.Config, lookupEnv func(string) (string, bool)) bool {
	if cfg.BaseEndpoint != nil && *cfg.BaseEndpoint != "" {
		return true
	}
	for _, name := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if v, ok := lookupEnv(name); ok && v != "" {
			return true
		}
	}
	return false
}

func tooLarge(n int64) string {
	size := "more than 1 MiB"
	if n > 0 {
		size = fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("the object is %s; a chimport config is a few kilobytes (at most %d bytes): check the key", size, MaxSize)
}

// s3Message turns S3's error codes into what to do about them. Other errors
// (network, throttling after the SDK's retries) keep the SDK's own text.
func s3Message(err error, region string) string {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return "cannot read the object: " + err.Error()
	}
	code := api.ErrorCode()
	what := code
	if msg := api.ErrorMessage(); msg != "" {
		what += " (" + msg + ")"
	}
	switch code {
	case "NoSuchKey", "NoSuchBucket", "AccessDenied", "NotFound", "Forbidden", "AllAccessDisabled":
		return "cannot read the object: " + what + "; " + checkAccess
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return "cannot read the object: " + what + "; the bucket is not in " + region + ": set AWS_REGION to the bucket's region"
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken":
		return "cannot read the object: " + what + "; check the AWS credentials (the task role, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
	}
	return "cannot read the object: " + err.Error()
}
