package alert

import (
	"os/exec"
	"strings"
	"testing"
)

// The policy learns what a person must do from the errors themselves, and
// leaves delivery to internal/alert/notify: it links neither the clients
// whose errors it reads nor the AWS SDK.
func TestPolicyLinksNoClientsAndNoAWS(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"chimport/internal/mailchimp", "chimport/internal/target", "chimport/internal/alert/notify", "github.com/aws/"} {
			if strings.Contains(pkg, banned) {
				t.Errorf("internal/alert links %s", pkg)
			}
		}
	}
}
