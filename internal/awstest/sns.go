package awstest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Notification is one SNS message as it arrives in a subscribed SQS queue
// (the SNS envelope, without raw delivery).
type Notification struct {
	Type              string
	TopicArn          string
	Subject           string
	Message           string
	MessageAttributes map[string]Attribute
}

// Attribute is a message attribute in the envelope: SNS writes Type and
// Value, goaws DataType and StringValue.
type Attribute struct{ Type, Value, DataType, StringValue string }

// String is the attribute's value, whoever wrote it.
func (a Attribute) String() string { return a.Value + a.StringValue }

// TopicWithQueue creates an SNS topic on goaws with an SQS queue
// subscribed to it, and points the SDK environment at goaws (see Env). The
// returned receive drains the queue, waiting up to wait seconds for the
// first message.
func TopicWithQueue(t testing.TB, name string) (topicARN string, receive func(wait int32) []Notification) {
	t.Helper()
	endpoint := SNS(t)
	Env(t, map[string]string{"SNS": endpoint, "SQS": endpoint})
	ctx := WaitContext(t, time.Minute)
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snsClient, sqsClient := sns.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	topic, err := snsClient.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	queue, err := sqsClient.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	attrs, err := sqsClient.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: queue.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	if _, err := snsClient.Subscribe(ctx, &sns.SubscribeInput{
		TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(attrs.Attributes["QueueArn"]),
	}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	receive = func(wait int32) []Notification {
		t.Helper()
		out, err := sqsClient.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: queue.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: wait})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		var got []Notification
		for _, m := range out.Messages {
			var n Notification // the SNS envelope, without raw delivery
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &n); err != nil {
				t.Fatalf("message body is not an SNS envelope: %v\n%s", err, aws.ToString(m.Body))
			}
			got = append(got, n)
			if _, err := sqsClient.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: queue.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("DeleteMessage: %v", err)
			}
		}
		return got
	}
	return aws.ToString(topic.TopicArn), receive
}
