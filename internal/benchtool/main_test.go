package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchmarksRun runs every benchmark on tiny sizes so that they cannot
// rot. It asserts nothing about time, only that each table comes out.
func TestBenchmarksRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", bin+"/", "github.com/beckmanconnect/bcupdate/cmd/bcpublish", "github.com/beckmanconnect/bcupdate/cmd/bcagent", "github.com/beckmanconnect/bcupdate/cmd/bcfleet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The benchmarks use keys.example/ from the repository root.
	wd, _ := os.Getwd()
	if err := os.Chdir(filepath.Join(wd, "..", "..")); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	out := filepath.Join(t.TempDir(), "performance.md")
	if err := run(options{bin: bin, size: 1 << 20, targets: []int{50}, duration: "1s", quick: true}, out, ""); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile(out)
	for _, s := range sections() {
		begin, end := "<!-- bench:"+s.name+" -->\n", "<!-- /bench:"+s.name+" -->"
		i, j := strings.Index(string(doc), begin), strings.Index(string(doc), end)
		if i < 0 || j < i || !strings.Contains(string(doc[i:j]), "\n|---") {
			t.Errorf("section %s produced no table:\n%s", s.name, doc)
		}
	}
}
