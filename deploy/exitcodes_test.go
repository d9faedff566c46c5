package deploy

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The EventBridge rule that reports failed tasks leaves out the exit codes
// chimport alerts on itself: 0 (nothing to say), 1 (a connection failed:
// the lag alert) and 3 (the target refused records: the rejected-records
// alert). Reporting them would page on every run while they last.
func TestTaskFailedRuleIgnoresChimportsOwnAlerts(t *testing.T) {
	m := loadTerraform(t)
	rule := m.resource(t, "aws_cloudwatch_event_rule.task_failed")
	pattern := m.text(rule.Body.Attributes["event_pattern"].Expr.Range())
	found := regexp.MustCompile(`exitCode\s*=\s*\[\{\s*"anything-but"\s*=\s*\[([0-9,\s]*)\]`).FindStringSubmatch(pattern)
	if found == nil {
		t.Fatalf("task_failed: no exitCode anything-but list in the event pattern:\n%s", pattern)
	}
	var codes []int
	for _, f := range strings.Split(found[1], ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("task_failed: exit code %q", f)
		}
		codes = append(codes, n)
	}
	slices.Sort(codes)
	if want := []int{0, 1, 3}; !slices.Equal(codes, want) {
		t.Errorf("task_failed ignores exit codes %v, want %v", codes, want)
	}
	if d := m.text(rule.Body.Attributes["description"].Expr.Range()); !strings.Contains(d, "0, 1 or 3") {
		t.Errorf("task_failed description %s does not name the codes it ignores", d)
	}
}
