package config_test

import (
	"testing"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/webhook"
)

// The config refuses what the receiver would refuse, no more and no less.
func TestMinWebhookSecretLenIsTheReceivers(t *testing.T) {
	if config.MinWebhookSecretLen != webhook.MinSecretLen {
		t.Errorf("config.MinWebhookSecretLen = %d, webhook.MinSecretLen = %d", config.MinWebhookSecretLen, webhook.MinSecretLen)
	}
}
