//go:build !windows

package client

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWatchRefusesSwappedLink: a bundle that the scans saw settle as a
// regular file and that is then replaced by a symbolic link to a FIFO,
// before the watcher opens it, is refused at once (a link is never
// followed, so nothing blocks on the FIFO) with a reason beside it, and
// the drop folder goes on working: the next bundle is imported.
func TestWatchRefusesSwappedLink(t *testing.T) {
	t.Parallel()
	e := newDropEnvUpdate(t)
	good := e.bundle("good.bcbundle")
	e.offline()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	dropped := e.drop(good, "swapped.bcbundle")
	e.w.beforeOpen = func(p string) {
		if p != dropped {
			return
		}
		if err := os.Remove(p); err != nil {
			t.Error(err)
		}
		if err := os.Symlink(fifo, p); err != nil {
			t.Error(err)
		}
	}
	e.scan() // first sight
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.w.scan(context.Background()); err != nil {
			t.Errorf("scan: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		// Unblock a reader stuck in open(2) on the FIFO, so that the test
		// ends: a writer that opens and closes gives it end of file.
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("the watcher followed the link and blocked on the FIFO")
	}
	e.w.beforeOpen = nil
	e.clock = e.clock.Add(e.w.settle)
	reason := filepath.Join(e.dir, watchRefused, "swapped.bcbundle"+reasonSuffix)
	if !exists(reason) {
		t.Fatal("the link was not moved to refused/ with a reason")
	}
	if n := e.note(reason); !strings.Contains(n, "symbolic link") {
		t.Errorf("reason %q does not say it is a link", n)
	}
	if got := e.auditCount(EventVerificationFailure); got != 1 {
		t.Errorf("%d verification-failure entries, want 1", got)
	}
	e.drop(good, "next.bcbundle")
	e.scan()
	e.scan()
	if !exists(filepath.Join(e.dir, watchImported, "next.bcbundle")) {
		t.Fatal("the drop folder stopped importing after the link")
	}
}

// TestWatchNoteOneLine: the note beside a moved bundle stays one line
// when it names a file whose name holds a newline (any name can be
// dropped).
func TestWatchNoteOneLine(t *testing.T) {
	t.Parallel()
	e := newDropEnv(t, nil)
	e.publish("1.0.0")
	good := e.bundle("good.bcbundle")
	e.offline()
	e.drop(good, "first\nline.bcbundle")
	e.scan()
	e.scan()
	e.drop(good, "again.bcbundle")
	e.scan()
	e.scan()
	if n := e.note(filepath.Join(e.dir, watchImported, "again.bcbundle"+resultSuffix)); !strings.Contains(n, "not imported again") || !strings.Contains(n, "first line.bcbundle") {
		t.Errorf("note %q", n)
	}
}
