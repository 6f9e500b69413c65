//go:build unix

package cliutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// streamOf is JOURNAL_STREAM's value for f, as systemd writes it.
func streamOf(t *testing.T, f *os.File) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func tempFile(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestUnderJournal: the journal format only when JOURNAL_STREAM names
// stderr itself, not when a process inherited the variable and its stderr
// is something else (systemd.exec(5), $JOURNAL_STREAM).
func TestUnderJournal(t *testing.T) {
	journal, other := tempFile(t, "journal"), tempFile(t, "redirected")
	stream := streamOf(t, journal)
	defer func(f func() (uint64, uint64, error)) { stderrID = f }(stderrID)
	cases := []struct {
		name   string
		stderr *os.File // nil: stat fails
		env    string
		want   bool
	}{
		{"stderr is the journal stream", journal, stream, true},
		{"stderr redirected, variable inherited", other, stream, false},
		{"no JOURNAL_STREAM", journal, "", false},
		{"not DEVICE:INODE", journal, "journal", false},
		{"no inode", journal, strings.Split(stream, ":")[0] + ":", false},
		{"no device", journal, ":" + strings.Split(stream, ":")[1], false},
		{"a third field", journal, stream + ":1", false},
		{"stderr cannot be stat'ed", nil, stream, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stderrID = func() (uint64, uint64, error) {
				if c.stderr == nil {
					return 0, 0, errors.New("bad file descriptor")
				}
				return fileID(c.stderr)
			}
			t.Setenv("JOURNAL_STREAM", c.env)
			if got := UnderJournal(); got != c.want {
				t.Errorf("JOURNAL_STREAM=%q: UnderJournal() = %v, want %v", c.env, got, c.want)
			}
		})
	}
}

// TestUnderJournalStderr: this process's own stderr, through the real fstat.
func TestUnderJournalStderr(t *testing.T) {
	stream := streamOf(t, os.Stderr)
	t.Setenv("JOURNAL_STREAM", stream)
	if !UnderJournal() {
		t.Errorf("JOURNAL_STREAM=%s is stderr's device and inode: UnderJournal() = false", stream)
	}
	dev, ino, _ := strings.Cut(stream, ":")
	t.Setenv("JOURNAL_STREAM", dev+":"+ino+"0")
	if UnderJournal() {
		t.Errorf("JOURNAL_STREAM=%s is not stderr (%s): UnderJournal() = true", os.Getenv("JOURNAL_STREAM"), stream)
	}
}

// TestUnderJournalChild: a service's child process inherits JOURNAL_STREAM;
// with its stderr redirected to a file it logs plain lines, with its
// stderr on the stream the variable names it logs for the journal.
func TestUnderJournalChild(t *testing.T) {
	if os.Getenv("BCUPDATE_JOURNAL_CHILD") == "1" {
		LogOptions{Format: "text", Level: "info", Journal: UnderJournal()}.NewLogger(os.Stderr).Info("hello")
		return
	}
	stream, redirected := tempFile(t, "stream"), tempFile(t, "redirected")
	for _, c := range []struct {
		stderr *os.File
		want   string
	}{{stream, "<6>level=INFO msg=hello"}, {redirected, "time="}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnderJournalChild$")
		cmd.Env = append(os.Environ(), "BCUPDATE_JOURNAL_CHILD=1", "JOURNAL_STREAM="+streamOf(t, stream))
		cmd.Stderr = c.stderr
		if out, err := cmd.Output(); err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		b, err := os.ReadFile(c.stderr.Name())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), c.want) {
			t.Errorf("child's stderr %s: %q, want it to start with %q", filepath.Base(c.stderr.Name()), b, c.want)
		}
	}
}
