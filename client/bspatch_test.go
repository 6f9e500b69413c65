package client

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// TestBspatchInterop applies patches made by Debian's bsdiff.
func TestBspatchInterop(t *testing.T) {
	testutil.NeedTool(t, "bsdiff")
	dir := t.TempDir()
	old := make([]byte, 300<<10)
	rand.Read(old)
	cases := map[string][]byte{
		"small change": append(append(bytes.Clone(old[:1000]), []byte("a new function")...), old[1000:]...),
		"shrink":       bytes.Clone(old[:100<<10]),
		"grow":         append(bytes.Clone(old), old[:50<<10]...),
		"unrelated":    bytes.Repeat([]byte("x"), 4096),
	}
	os.WriteFile(filepath.Join(dir, "old"), old, 0o644)
	for name, newer := range cases {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "new"), newer, 0o644)
			if out, err := exec.Command("bsdiff", filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "patch")).CombinedOutput(); err != nil {
				t.Fatalf("bsdiff: %v %s", err, out)
			}
			patch, _ := os.ReadFile(filepath.Join(dir, "patch"))
			var got bytes.Buffer
			if err := bspatch(bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), int64(len(patch)), &got, int64(len(newer))); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), newer) {
				t.Fatal("patched result differs")
			}
			// A patch for another size, or damaged, is refused.
			if bspatch(bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), int64(len(patch)), &bytes.Buffer{}, int64(len(newer))+1) == nil {
				t.Error("accepted a wrong result size")
			}
			bad := bytes.Clone(patch)
			bad[40] ^= 0xff
			var out bytes.Buffer
			if err := bspatch(bytes.NewReader(old), int64(len(old)), bytes.NewReader(bad), int64(len(bad)), &out, int64(len(newer))); err == nil && bytes.Equal(out.Bytes(), newer) {
				t.Error("a damaged patch produced the right bytes?")
			}
		})
	}
}

// FuzzBspatch: hostile patches never panic and never write more than the
// declared size.
func FuzzBspatch(f *testing.F) {
	f.Add([]byte("BSDIFF40"))
	f.Add(append([]byte("BSDIFF40"), make([]byte, 40)...))
	old := bytes.Repeat([]byte("old data "), 100)
	f.Fuzz(func(t *testing.T, patch []byte) {
		var out bytes.Buffer
		_ = bspatch(bytes.NewReader(old), int64(len(old)), bytes.NewReader(patch), int64(len(patch)), &out, 1000)
		if out.Len() > 1000 {
			t.Fatalf("wrote %d bytes for a 1000-byte result", out.Len())
		}
	})
}
