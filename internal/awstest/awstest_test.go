package awstest

import (
	"net/http"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestEmulatorsStart proves each emulator is installed and answers HTTP.
func TestEmulatorsStart(t *testing.T) {
	for name, start := range map[string]func(testing.TB) string{"dynalite": DynamoDB, "goaws": SNS, "s3rver": S3} {
		t.Run(name, func(t *testing.T) {
			endpoint := start(t)
			resp, err := http.Get(endpoint)
			if err != nil {
				t.Fatalf("%s at %s: %v", name, endpoint, err)
			}
			resp.Body.Close()
		})
	}
}
