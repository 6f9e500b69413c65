//go:build unix

package regfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("hello"), 0o644)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, 100), 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(small, link)
	cases := []struct {
		name, path string
		limit      int64
		err        error
		msg        string
	}{
		{"regular", small, 10, nil, ""},
		{"symlink to a regular file", link, 10, nil, ""},
		{"exactly the limit", small, 5, nil, ""},
		{"too large", big, 99, ErrTooLarge, big + ": 100 bytes, larger than the limit of 99 bytes"},
		{"device", "/dev/zero", 1 << 20, ErrNotRegular, "/dev/zero: not a regular file (a character device)"},
		{"fifo", fifo, 1 << 20, ErrNotRegular, fifo + ": not a regular file (a FIFO)"},
		{"directory", dir, 1 << 20, ErrNotRegular, "not a regular file (a directory)"},
		{"missing", filepath.Join(dir, "nothing"), 10, fs.ErrNotExist, filepath.Join(dir, "nothing") + ": no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := Read(tc.path, tc.limit); done <- err }()
			select {
			case err := <-done:
				if tc.err == nil && err != nil {
					t.Fatal(err)
				}
				if tc.err != nil && (!errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg)) {
					t.Fatalf("want %v %q, got %v", tc.err, tc.msg, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Read blocked")
			}
		})
	}
}

func TestReadIn(t *testing.T) {
	dir := t.TempDir()
	inside := filepath.Join(dir, "repo")
	os.Mkdir(inside, 0o755)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("secret"), 0o644)
	os.Symlink("../secret", filepath.Join(inside, "out"))
	root, err := os.OpenRoot(inside)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := ReadIn(root, "out", 100); err == nil {
		t.Fatal("a link out of the root was followed")
	}
}
