package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAlertsSNSTopicARN(t *testing.T) {
	const want = "alerts.sns_topic_arn: must be an SNS topic ARN, arn:aws:sns:<region>:<12-digit account id>:<topic name>"
	tests := []struct {
		arn     string
		problem string // "" when valid
	}{
		{"", ""}, // not set: alerts go to the log only
		{"arn:aws:sns:eu-west-1:123456789012:chimport-alerts", ""},
		{"arn:aws:sns:us-east-1:100010001000:chimport_alerts.fifo", ""},
		{"arn:aws-cn:sns:cn-north-1:123456789012:alerts", ""},
		{"arn:aws-us-gov:sns:us-gov-west-1:123456789012:alerts", ""},
		{"arn:aws:sns:eu-west-1:123456789012:" + strings.Repeat("a", 256), ""},

		{"chimport-alerts", want},
		{"https://sns.eu-west-1.amazonaws.com/123456789012/chimport-alerts", want},
		{"arn:aws:sns:eu-west-1:123456789012", want},
		{"arn:aws:sns:eu-west-1:123456789012:alerts:extra", want},
		{" arn:aws:sns:eu-west-1:123456789012:alerts", want},
		{"arn:gcp:sns:eu-west-1:123456789012:alerts", want + " (the partition after arn: is aws, aws-cn or aws-us-gov)"},
		{"arn:aws:sqs:eu-west-1:123456789012:alerts", want + " (this ARN is not for SNS)"},
		{"arn:aws:sns::123456789012:alerts", want + " (the region is missing or malformed)"},
		{"arn:aws:sns:EU-WEST-1:123456789012:alerts", want + " (the region is missing or malformed)"},
		{"arn:aws:sns:eu-west:123456789012:alerts", want + " (the region is missing or malformed)"},
		{"arn:aws:sns:eu-west-1:1234:alerts", want + " (the account id must be 12 digits)"},
		{"arn:aws:sns:eu-west-1:12345678901a:alerts", want + " (the account id must be 12 digits)"},
		{"arn:aws:sns:eu-west-1:123456789012:", want + " (a topic name is 1 to 256 letters, digits, - and _, with .fifo at the end for a FIFO topic)"},
		{"arn:aws:sns:eu-west-1:123456789012:my.alerts", want + " (a topic name is 1 to 256 letters, digits, - and _, with .fifo at the end for a FIFO topic)"},
		{"arn:aws:sns:eu-west-1:123456789012:.fifo", want + " (a topic name is 1 to 256 letters, digits, - and _, with .fifo at the end for a FIFO topic)"},
		{"arn:aws:sns:eu-west-1:123456789012:" + strings.Repeat("a", 257), want + " (a topic name is 1 to 256 letters, digits, - and _, with .fifo at the end for a FIFO topic)"},
	}
	for _, tt := range tests {
		// From the environment, so a quoted value would be a bug: the
		// loader never shows values that came from ${VAR}.
		yaml := "alerts:\n  sns_topic_arn: ${ARN}\nconnections:\n  - name: a\n" + valid
		cfg, err := Parse([]byte(yaml), "x", env(map[string]string{"ARN": tt.arn}))
		if tt.problem == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.arn, err)
			} else if cfg.Alerts.SNSTopicARN != tt.arn {
				t.Errorf("%q: SNSTopicARN = %q", tt.arn, cfg.Alerts.SNSTopicARN)
			}
			continue
		}
		if diff := cmp.Diff([]string{tt.problem + " (line 2)"}, problemStrings(t, err)); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tt.arn, diff)
		}
	}
}

func TestAlertsValidateInCode(t *testing.T) {
	cfg := (&Config{
		Alerts:      Alerts{SNSTopicARN: "arn:aws:sns:eu-west-1:123456789012"},
		Connections: []Connection{{Name: "a", Mailchimp: Mailchimp{APIKey: "k-us2", ListID: "l"}, Target: Target{URL: "http://localhost:1"}}},
	}).WithDefaults()
	want := "config: 1 problem:\n  alerts.sns_topic_arn: must be an SNS topic ARN, arn:aws:sns:<region>:<12-digit account id>:<topic name>"
	if err := cfg.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want\n%s", err, want)
	}
}
