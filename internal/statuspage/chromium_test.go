package statuspage

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// go test ./internal/statuspage -run Chromium -args -screenshot=/tmp/chimport-status.png
// keeps the screenshot for a person to look at.
var screenshotCopy = flag.String("screenshot", "", "also write the Chromium screenshot of the status page to this file")

// chromiumTimeout bounds one Chromium run; a cold start on a loaded
// 2-core machine takes a few seconds.
const chromiumTimeout = 90 * time.Second

// Chromium renders the page for real: the screenshot shows the layout a
// person sees, and the DOM after parsing shows every row survived the
// browser's HTML parser. Without Chromium the test fails rather than skips
// (make test installs it), so the page is never left untested.
func TestChromium(t *testing.T) {
	bin := findChromium(t)
	srv := httptest.NewServer(handler(sampleRows()...))
	defer srv.Close()
	dir := t.TempDir()

	shot := filepath.Join(dir, "status.png")
	runChromium(t, bin, dir, "--window-size=1100,800", "--screenshot="+shot, srv.URL)
	raw, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1100 || b.Dy() != 800 {
		t.Errorf("screenshot is %dx%d, want 1100x800", b.Dx(), b.Dy())
	}
	colors, lagging, failing := colorStats(img)
	if colors < 50 {
		t.Errorf("screenshot has %d colours: a blank or unstyled page", colors)
	}
	// The lagging row's background (--lag-bg, #fff3e0) must cover a good
	// part of a table row: the highlight was actually painted.
	if lagging < 5000 {
		t.Errorf("only %d pixels of the lagging highlight", lagging)
	}
	// And the failing rows' (--fail-bg, #fdeceb), three rows of it.
	if failing < 15000 {
		t.Errorf("only %d pixels of the failing highlight", failing)
	}
	if *screenshotCopy != "" {
		if err := os.WriteFile(*screenshotCopy, raw, 0o644); err != nil {
			t.Error(err)
		}
	}

	dom := runChromium(t, bin, dir, "--dump-dom", srv.URL)
	for _, want := range []string{
		`<tr class="failing" data-connection="newsletter">`,
		`<tr class="failing" data-connection="shop-eu">`,
		`<tr class="failing" data-connection="crm">`,
		`<tr class="lagging" data-connection="events">`,
		`<tr class="never" data-connection="loyalty">`,
		`7 connections, 3 failing, 2 lagging, 1 with rejected records`,
		`<tr class="rejected" data-connection="offers">`,
		`3 rejected`,
		`<span class="hint">The next run retries; a lag alert is sent if the lag passes 3h.</span>`,
		`never synced`,
		`48,213`, // the members column survived the parser too
		`not counted yet`,
		`title="target &quot;shop-eu&quot;: POST`, // the full error, re-serialised by Chromium
		`unknown country code 'XX'`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %s", want)
		}
	}
	if n := strings.Count(dom, "data-connection="); n != 7 {
		t.Errorf("rendered DOM has %d rows, want 7", n)
	}
}

func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed (apt-get install -y chromium); the status page test needs it")
	return ""
}

// runChromium runs headless Chromium on args and returns its stdout. It
// runs in its own process group, so a timeout kills the renderer and GPU
// children too, not only the launcher script.
func runChromium(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	profile, err := os.MkdirTemp(dir, "profile")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + profile,
	}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_CACHE_HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// colorStats counts the distinct colours of img and the pixels that are
// the lagging and the failing highlights' backgrounds.
func colorStats(img image.Image) (distinct, lagging, failing int) {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			c := [3]uint32{r >> 8, g >> 8, bl >> 8}
			seen[c] = true
			if near(c, [3]uint32{0xff, 0xf3, 0xe0}) {
				lagging++
			}
			if near(c, [3]uint32{0xfd, 0xec, 0xeb}) {
				failing++
			}
		}
	}
	return len(seen), lagging, failing
}

func near(a, b [3]uint32) bool {
	for i := range a {
		if max(a[i], b[i])-min(a[i], b[i]) > 2 {
			return false
		}
	}
	return true
}
