package engine

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The engine declares the store it needs (Store) and links no driver: no
// AWS SDK, no SQLite and no pgx, whatever the binary links for its stores.
// Its tests link all three (stores_test.go); `go list -deps` without -test
// lists what the package itself pulls in.
func TestEngineLinksNoStoreDriver(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	for _, pkg := range pkgs {
		if strings.Contains(pkg, "github.com/aws/") || strings.Contains(strings.ToLower(pkg), "sqlite") ||
			strings.Contains(pkg, "github.com/jackc/") {
			t.Errorf("internal/engine links %s", pkg)
		}
	}
}
