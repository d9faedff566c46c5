package notify

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/chimport/chimport/internal/alert"
)

// maxSubject is SNS's limit: a Subject must be "less than 100 characters".
const maxSubject = 99

// SNS publishes alerts to an Amazon SNS topic: Subject is the alert's subject
// (for e-mail subscribers), Message its Text. The alert's kind and connection
// go along as message attributes, so subscriptions can filter on them.
type SNS struct {
	client   *sns.Client
	topicARN string
}

// NewSNS returns a notifier that publishes to topicARN through client.
func NewSNS(client *sns.Client, topicARN string) *SNS {
	return &SNS{client: client, topicARN: topicARN}
}

// NewSNSFromEnv builds the SNS client from the standard AWS SDK environment
// (credentials, AWS_ENDPOINT_URL_SNS, the ECS task role, ...). The region is
// always the topic's, taken from its ARN: SNS accepts a Publish only in the
// topic's own region, so the task's AWS_REGION would be wrong for a topic
// kept elsewhere.
func NewSNSFromEnv(ctx context.Context, topicARN string) (*SNS, error) {
	a, err := arn.Parse(topicARN)
	if err != nil || a.Service != "sns" || a.Region == "" || a.Resource == "" {
		return nil, errors.New("alert: alerts.sns_topic_arn is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)")
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(a.Region))
	if err != nil {
		return nil, fmt.Errorf("alert: loading the AWS configuration for SNS: %w", err)
	}
	return NewSNS(sns.NewFromConfig(cfg), topicARN), nil
}

// Notify publishes a once. The SDK retries throttling and 5xx itself.
func (s *SNS) Notify(ctx context.Context, a alert.Alert) error {
	in := &sns.PublishInput{
		TopicArn: aws.String(s.topicARN),
		Message:  aws.String(a.Text()),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"kind": {DataType: aws.String("String"), StringValue: aws.String(string(a.Kind))},
		},
	}
	if subject := snsSubject(a.Subject); subject != "" {
		in.Subject = aws.String(subject)
	}
	if a.Connection != "" {
		in.MessageAttributes["connection"] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(a.Connection)}
	}
	if strings.HasSuffix(s.topicARN, ".fifo") {
		// FIFO topics refuse a message without these. One group per
		// connection keeps its alerts in order; the id makes an SDK retry
		// of the same alert a no-op.
		in.MessageGroupId = aws.String(cmp.Or(a.Connection, "chimport"))
		sum := sha256.Sum256([]byte(strings.Join([]string{string(a.Kind), a.Connection, a.At.String(), a.Subject}, "\x00")))
		in.MessageDeduplicationId = aws.String(hex.EncodeToString(sum[:]))
	}
	if _, err := s.client.Publish(ctx, in); err != nil {
		return fmt.Errorf("alert: publishing to SNS topic %s: %w", s.topicARN, err)
	}
	return nil
}

// snsSubject makes s acceptable as an SNS Subject: printable ASCII only, no
// line breaks, starting with a letter, digit or punctuation, under 100
// characters. SNS rejects the whole Publish otherwise, and the alert with it.
func snsSubject(s string) string {
	ascii := strings.Map(func(r rune) rune {
		switch {
		case r >= 0x21 && r <= 0x7e:
			return r
		case r == '\u2026':
			return '.' // our own clip marker, should a server string carry it
		case r <= 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u00a0':
			return ' '
		}
		return '?'
	}, s)
	subject := strings.Join(strings.Fields(ascii), " ")
	if len(subject) > maxSubject {
		subject = strings.TrimSpace(subject[:maxSubject-3]) + "..."
	}
	return subject
}
