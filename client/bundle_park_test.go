package client

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestParkFailureKeepsStaged: a staging directory that cannot be moved
// aside (here a leftover in the way; on Windows a scanner holding a file)
// is not counted as parked, so a failed import that then settles what it
// parked leaves it alone.
func TestParkFailureKeepsStaged(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{dir: dir, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	staged := filepath.Join(dir, stagingRoot, "app", "1.1.0", "app.tar.gz")
	if err := os.MkdirAll(filepath.Dir(staged), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(staged, []byte("earlier bundle"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, parkedRoot, "app", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	src := &bundleSource{parked: map[string]bool{}}
	if err := src.park(root, "app"); err == nil {
		t.Fatal("moving the staging directory onto a non-empty one succeeded")
	}
	if err := src.park(root, "app"); err == nil {
		t.Fatal("the second removal of a component whose park failed removed it")
	}
	if !src.unpark(a) {
		t.Error("unpark reports a failure with nothing parked")
	}
	if _, err := os.Stat(staged); err != nil {
		t.Fatalf("the earlier staged file after a failed park and a refused import: %v", err)
	}
}
