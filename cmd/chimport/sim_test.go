package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSimServesUntilCancelled starts `chimport sim` on free ports, talks to
// both simulators the way a user with curl would, then interrupts it.
func TestSimServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"sim", "--listen", "127.0.0.1:0", "--target-listen", "127.0.0.1:0",
			"--members", "2500", "--target-auth", "Bearer t"}, env{stdout: &stdout, stderr: &stderr, lookupEnv: func(string) (string, bool) { return "", false }})
	}()
	fieldRe := regexp.MustCompile(`(?m)^  (mailchimp base_url|api_key|list_id|target url): +(\S+)`)
	fields := map[string]string{}
	waitUntil(t, "sim to print its addresses", 10*time.Second, func() bool {
		for _, m := range fieldRe.FindAllStringSubmatch(stdout.String(), -1) {
			fields[m[1]] = m[2]
		}
		return len(fields) == 4
	})
	base, key := fields["mailchimp base_url"], fields["api_key"]
	if !strings.HasPrefix(base, "http://127.0.0.1:") || !strings.HasSuffix(base, "/3.0") {
		t.Fatalf("base_url = %q", base)
	}

	get := func(path string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.SetBasicAuth("anystring", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, body
	}
	if code, body := get("/ping"); code != 200 || body["health_status"] != "Everything's Chimpy!" {
		t.Errorf("ping: %d %v", code, body)
	}
	code, body := get("/lists/" + fields["list_id"] + "/members?count=5000&fields=members.id,total_items")
	if members, _ := body["members"].([]any); code != 200 || len(members) != 1000 {
		t.Errorf("members page: status %d, %d members; want 200 and count capped at 1000", code, len(members))
	}

	post := func(auth string) int {
		req, _ := http.NewRequest(http.MethodPost, fields["target url"], bytes.NewBufferString(`[{"id":"x","email":"x@example.com"}]`))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("Bearer t"); got != 200 {
		t.Errorf("target POST with auth = %d, want 200", got)
	}
	if got := post("wrong"); got != 401 {
		t.Errorf("target POST with wrong auth = %d, want 401", got)
	}

	cancel()
	waitUntil(t, "sim to stop", 10*time.Second, func() bool { return len(done) == 1 })
	if code := <-done; code != exitOK {
		t.Fatalf("sim exit code = %d, stderr %s", code, stderr.String())
	}
}

// The config sim prints passes check as it is, target header included,
// with a key that the seed alone decides.
func TestSimPrintedConfigPassesCheck(t *testing.T) {
	for _, auth := range []string{"Bearer demo", "Bearer ${not-a-variable} $x"} {
		t.Run(auth, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stdout, stderr syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- execute(ctx, []string{"sim", "--listen", "127.0.0.1:0", "--target-listen", "127.0.0.1:0",
					"--members", "50", "--seed", "3", "--target-auth", auth}, env{stdout: &stdout, stderr: &stderr, lookupEnv: func(string) (string, bool) { return "", false }})
			}()
			var config string
			waitUntil(t, "sim to print its config", 10*time.Second, func() bool {
				_, after, ok := strings.Cut(stdout.String(), "A config for it")
				_, config, _ = strings.Cut(after, "\n")
				return ok && strings.Contains(config, "target:")
			})
			config = strings.ReplaceAll(config, "\n  ", "\n")[2:] // unindent
			if want := "api_key:            " + simAPIKey(3) + " (derived from --seed 3"; !strings.Contains(stdout.String(), want) {
				t.Errorf("sim output lacks %q:\n%s", want, stdout.String())
			}

			r := runCLI(t, context.Background(), nil, "check", "--config", writeFile(t, "chimport.yaml", config))
			if r.code != exitOK {
				t.Errorf("check of the printed config: exit %d\nconfig:\n%s\nstdout: %s\nstderr: %s", r.code, config, r.stdout, r.stderr)
			}
			cancel()
			waitUntil(t, "sim to stop", 10*time.Second, func() bool { return len(done) == 1 })
		})
	}
}

func TestSimAPIKeyDependsOnTheSeedOnly(t *testing.T) {
	keyRe := regexp.MustCompile(`^[0-9a-f]{32}-us1$`)
	if a, b := simAPIKey(1), simAPIKey(1); a != b || !keyRe.MatchString(a) {
		t.Errorf("simAPIKey(1) = %q, then %q; want one key of Mailchimp's form", a, b)
	}
	if simAPIKey(1) == simAPIKey(2) {
		t.Errorf("seeds 1 and 2 give the same key %q", simAPIKey(1))
	}
}
