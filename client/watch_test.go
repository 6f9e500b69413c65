package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dropEnv is a flow environment with a drop folder and a watcher on it
// whose settle clock the test moves (scan), so that "complete" does not
// depend on how fast the test runs.
type dropEnv struct {
	*flowEnv
	dir   string
	w     *watcher
	clock time.Time
}

// newDropEnvUpdate is a drop folder's agent with 1.0.0 installed and
// 1.1.0 published, the update the tests' bundles carry.
func newDropEnvUpdate(t *testing.T) *dropEnv {
	t.Helper()
	e := newDropEnv(t, nil)
	e.publish("1.0.0")
	e.install("1.0.0")
	e.publish("1.1.0")
	return e
}

func newDropEnv(t *testing.T, mutate func(*Config)) *dropEnv {
	t.Helper()
	e := &dropEnv{flowEnv: newFlowEnv(t, mutate), dir: t.TempDir(), clock: time.Now()}
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	e.w = newWatcher(e.state, &OpenOptions{Log: log}, log, time.Now)
	e.w.now = func() time.Time { return e.clock }
	e.w.setDir(e.dir)
	return e
}

// testLogWriter sends the watcher's log to the test's.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// scan looks into the drop folder once, then moves the clock on by the
// settle time: a file unchanged until the next scan is complete there.
func (e *dropEnv) scan() {
	e.t.Helper()
	if err := e.w.scan(context.Background()); err != nil {
		e.t.Fatalf("scan: %v", err)
	}
	e.clock = e.clock.Add(e.w.settle)
}

// drop copies a bundle into the drop folder as name, the documented way:
// as name.part, renamed when complete.
func (e *dropEnv) drop(src, name string) string {
	e.t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		e.t.Fatal(err)
	}
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p+".part", data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(p+".part", p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// note reads the one-line note the watcher left beside a moved bundle.
func (e *dropEnv) note(p string) string {
	e.t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatalf("no note: %v", err)
	}
	if s := strings.TrimSuffix(string(data), "\n"); strings.Contains(s, "\n") || s == "" {
		e.t.Errorf("%s is not one line: %q", filepath.Base(p), data)
	}
	return string(data)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// auditCount counts the audit log's entries of a kind.
func (e *dropEnv) auditCount(kind EventKind) int {
	e.t.Helper()
	n := 0
	e.do(func(a *Agent) error {
		au, _, err := a.ExportLogs()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, le := range au {
			if bytes.Contains(le.Entry, []byte(`"event":"`+string(kind)+`"`)) {
				n++
			}
		}
		return nil
	})
	return n
}

// statusAt is the agent's status as of now (Agent.Status at another time).
func (e *dropEnv) statusAt(now time.Time) *StatusReport {
	e.t.Helper()
	var r *StatusReport
	e.do(func(a *Agent) error {
		st, err := a.loadState()
		if err != nil {
			e.t.Fatal(err)
		}
		r = a.statusOf(st)
		a.assess(r, st, now)
		return nil
	})
	return r
}

func hasProblem(r *StatusReport, part string) bool {
	for _, p := range r.Problems {
		if strings.Contains(p, part) {
			return true
		}
	}
	return false
}

// TestWatchImportsDroppedBundle: a bundle dropped into the folder is
// imported once complete (not at first sight), installed when the policy
// is auto, moved to imported/ with a note; one with a gated feature is
// staged and waits for a person, with the usual notification. Other files
// are left alone. Status then takes the import as the PC's freshness,
// until the bundle's window is over.
func TestWatchImportsDroppedBundle(t *testing.T) {
	t.Parallel()
	e := newDropEnv(t, func(c *Config) { c.Policies = map[string]Policy{flowComp: PolicyAuto} })
	e.publish("1.0.0")
	e.install("1.0.0")
	e.publish("1.1.0")
	b1 := e.bundle("b1.bcbundle")
	e.publish("1.2.0", flowGated)
	b2 := e.bundle("b2.bcbundle")
	e.offline()
	for _, other := range []string{"notes.txt", "nc.bcbundle.part", ".hidden.bcbundle"} {
		os.WriteFile(filepath.Join(e.dir, other), []byte("not for the agent"), 0o644)
	}
	dropped := e.drop(b1, "nc-1.1.0.bcbundle")

	e.scan()
	if !exists(dropped) || exists(filepath.Join(e.dir, watchImported)) {
		t.Fatal("a file was imported the first time it was seen (it may still be being copied)")
	}
	e.scan()
	moved := filepath.Join(e.dir, watchImported, "nc-1.1.0.bcbundle")
	if exists(dropped) || !exists(moved) {
		t.Fatalf("after two scans: dropped file there %v, in imported/ %v", exists(dropped), exists(moved))
	}
	if n := e.note(moved + resultSuffix); !strings.Contains(n, "staged notification-client 1.1.0") {
		t.Errorf("result note %q does not say what was staged", n)
	}
	if got := e.current(); got != "1.1.0" {
		t.Errorf("policy auto: current %q after the import, want 1.1.0", got)
	}
	for _, other := range []string{"notes.txt", "nc.bcbundle.part", ".hidden.bcbundle"} {
		if !exists(filepath.Join(e.dir, other)) {
			t.Errorf("%s was touched", other)
		}
	}

	// A release with a gated feature: staged, waits for a person.
	e.drop(b2, "nc-1.2.0.bcbundle")
	e.scan()
	e.scan()
	moved = filepath.Join(e.dir, watchImported, "nc-1.2.0.bcbundle")
	if n := e.note(moved + resultSuffix); !strings.Contains(n, "staged notification-client 1.2.0") || !strings.Contains(n, "waits for a person") {
		t.Errorf("result note %q", n)
	}
	if c := e.componentState(); c.State != StateAwaitingAuthorization || e.current() != "1.1.0" {
		t.Fatalf("gated release from the drop folder: state %s, current %s", c.State, e.current())
	}
	var notes []Notification
	e.do(func(a *Agent) error { notes, _ = a.Notifications(); return nil })
	if !flowHasNote(notes, NoteAwaitingAuthorization) {
		t.Errorf("no awaiting-authorization notification: %+v", notes)
	}

	// Status: the import is the freshness; no check ever succeeded.
	r := e.statusAt(time.Now())
	if r.LastImport == nil || r.LastImport.Bundle != "nc-1.2.0.bcbundle" || r.LastImport.Outcome != ImportAwaiting ||
		len(r.LastImport.Staged) != 1 || r.LastImport.Staged[0] != "notification-client 1.2.0" || r.LastImport.Expired {
		t.Fatalf("last import %+v", r.LastImport)
	}
	if r.Health != HealthAwaiting || hasProblem(r, "no check") {
		t.Errorf("status inside the window: %s %q", r.Health, r.Problems)
	}
	// After the window: attention, saying what to do.
	r = e.statusAt(r.LastImport.Expires.Add(time.Minute))
	if r.Health != HealthAttention || !r.LastImport.Expired ||
		!hasProblem(r, "expired on "+stamp(r.LastImport.Expires)+"; bring a newer bundle or connect the PC") {
		t.Errorf("status after the window: %s %q", r.Health, r.Problems)
	}
	js, _ := json.Marshal(r)
	if !bytes.Contains(js, []byte(`"last_import":{"at":`)) || !bytes.Contains(js, []byte(`"expired":true`)) {
		t.Errorf("status --json: %s", js)
	}
}

// TestWatchRefusesTampered: a tampered bundle and a file that is no
// bundle go to refused/ with a reason naming the problem; nothing of the
// agent changes but the audit log and the critical notification; the same
// tampered file dropped again is not imported again.
func TestWatchRefusesTampered(t *testing.T) {
	t.Parallel()
	e := newDropEnvUpdate(t)
	good := e.bundle("good.bcbundle")
	bad := tamperedBundle(t, good, flowArtifact("1.1.0"))
	e.offline()
	skip := []string{"audit.jsonl", "audit.jsonl.head", "notifications.json", "agent.lock", "activity.json", watchedFile}
	before := snapshotTree(t, e.state, skip...)
	e.drop(bad, "tampered.bcbundle")
	os.WriteFile(filepath.Join(e.dir, "junk.BCBUNDLE"), bytes.Repeat([]byte("junk "), 500), 0o644)
	e.scan()
	e.scan()
	refused := filepath.Join(e.dir, watchRefused)
	if n := e.note(filepath.Join(refused, "tampered.bcbundle"+reasonSuffix)); !strings.Contains(n, "notification-client/linux-amd64/1.1.0/"+flowArtifact("1.1.0")) {
		t.Errorf("reason %q does not name the tampered artifact", n)
	}
	if n := e.note(filepath.Join(refused, "junk.BCBUNDLE"+reasonSuffix)); !strings.Contains(n, "not a bcupdate bundle") {
		t.Errorf("reason %q", n)
	}
	if !exists(filepath.Join(refused, "tampered.bcbundle")) || exists(filepath.Join(e.dir, "tampered.bcbundle")) {
		t.Error("the tampered bundle was not moved to refused/")
	}
	sameTree(t, "state after refused bundles", before, snapshotTree(t, e.state, skip...))
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("current %q", got)
	}
	failures := e.auditCount(EventVerificationFailure)
	if failures != 2 {
		t.Errorf("%d verification-failure audit entries, want 2", failures)
	}
	var notes []Notification
	e.do(func(a *Agent) error { notes, _ = a.Notifications(); return nil })
	if !flowHasNote(notes, NoteVerificationFailure) {
		t.Errorf("no critical notification: %+v", notes)
	}
	// Dropped again (a job re-copying a share): refused without a new
	// audit entry, under a free name.
	e.drop(bad, "tampered.bcbundle")
	e.scan()
	e.scan()
	if n := e.note(filepath.Join(refused, "tampered-2.bcbundle"+reasonSuffix)); !strings.Contains(n, "not imported again") || !strings.Contains(n, "tampered.bcbundle") {
		t.Errorf("second drop: reason %q", n)
	}
	if got := e.auditCount(EventVerificationFailure); got != failures {
		t.Errorf("the same tampered file was verified again (%d audit entries, want %d)", got, failures)
	}
}

// TestWatchWaitsForCompleteFile: a file still being copied (it grows from
// scan to scan) is not imported until it stops changing; a file copied as
// NAME.bcbundle.part is not looked at until it is renamed.
func TestWatchWaitsForCompleteFile(t *testing.T) {
	t.Parallel()
	e := newDropEnvUpdate(t)
	first := e.bundle("first.bcbundle")
	second := e.bundle("second.bcbundle", "--valid-for", "20d")
	e.offline()

	part := e.drop(first, "nc.bcbundle.part")
	e.scan()
	e.scan()
	if !exists(part) || exists(filepath.Join(e.dir, watchImported)) || exists(filepath.Join(e.dir, watchRefused)) {
		t.Fatal("a .part file was touched")
	}
	if err := os.Rename(part, filepath.Join(e.dir, "nc.bcbundle")); err != nil {
		t.Fatal(err)
	}
	e.scan()
	e.scan()
	if !exists(filepath.Join(e.dir, watchImported, "nc.bcbundle")) {
		t.Fatal("the renamed bundle was not imported")
	}

	data, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	growing := filepath.Join(e.dir, "growing.bcbundle")
	f, err := os.Create(growing)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	third := len(data) / 3
	for i, chunk := range [][]byte{data[:third], data[third : 2*third], data[2*third:]} {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		e.scan()
		if !exists(growing) || exists(filepath.Join(e.dir, watchRefused)) {
			t.Fatalf("after chunk %d: a file still growing was handled", i+1)
		}
	}
	if got := e.auditCount(EventVerificationFailure); got != 0 {
		t.Fatalf("a half-copied file was verified (%d verification failures)", got)
	}
	e.scan()
	if exists(growing) || !exists(filepath.Join(e.dir, watchImported, "growing.bcbundle")) {
		t.Fatal("the complete file was not imported")
	}
	if got := e.auditCount(EventBundleImported); got != 2 {
		t.Errorf("%d bundle-imported entries, want 2", got)
	}
}

// TestWatchSameFileTwice: the same bundle dropped again, under its name or
// another, is moved to imported/ without being imported again; a bundle
// that cannot be moved away is not imported again at every scan.
func TestWatchSameFileTwice(t *testing.T) {
	t.Parallel()
	e := newDropEnvUpdate(t)
	good := e.bundle("good.bcbundle")
	other := e.bundle("other.bcbundle", "--valid-for", "20d")
	e.offline()
	e.drop(good, "a.bcbundle")
	e.scan()
	e.scan()
	e.drop(good, "a.bcbundle")
	e.drop(good, "b.bcbundle")
	e.scan()
	e.scan()
	imported := filepath.Join(e.dir, watchImported)
	for _, name := range []string{"a-2.bcbundle", "b.bcbundle"} {
		if n := e.note(filepath.Join(imported, name+resultSuffix)); !strings.Contains(n, "not imported again") {
			t.Errorf("%s: note %q", name, n)
		}
	}
	if got := e.auditCount(EventBundleImported); got != 1 {
		t.Fatalf("%d imports of the same bundle, want 1", got)
	}

	// A folder whose imported/ cannot be made: the bundle is imported
	// once, left where it is, and not imported again.
	// The same for a refused one that has no sha256 to be remembered by
	// (a link, which import refuses).
	stuck := t.TempDir()
	for _, sub := range []string{watchImported, watchRefused} {
		if err := os.WriteFile(filepath.Join(stuck, sub), []byte("in the way"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.w.setDir(stuck)
	e.dir = stuck
	e.drop(other, "c.bcbundle")
	if err := os.Symlink(good, filepath.Join(stuck, "d.bcbundle")); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		e.scan()
	}
	if !exists(filepath.Join(stuck, "c.bcbundle")) || !exists(filepath.Join(stuck, "d.bcbundle")) {
		t.Error("a bundle that could not be moved is gone")
	}
	if got := e.auditCount(EventBundleImported); got != 2 {
		t.Errorf("%d imports, want 2: a bundle that cannot be moved is imported again and again", got)
	}
	if got := e.auditCount(EventVerificationFailure); got != 1 {
		t.Errorf("%d refusals of the link, want 1: a refused file that cannot be moved is refused again and again", got)
	}
}

// TestWatchRetriesOperationalFailure: while another command holds the
// state directory, a dropped file stays where it is and is tried again at
// each scan; once the state directory is free it is imported; after the
// last attempt a file is moved to refused/ with the error.
func TestWatchRetriesOperationalFailure(t *testing.T) {
	t.Parallel()
	e := newDropEnvUpdate(t)
	good := e.bundle("good.bcbundle")
	e.offline()
	e.w.lockWait = 0
	held := e.open()
	closed := false
	defer func() {
		if !closed {
			held.Close()
		}
	}()
	junk := filepath.Join(e.dir, "junk.bcbundle")
	os.WriteFile(junk, []byte("junk"), 0o644)
	e.scan() // first sight
	for i := 1; i < watchAttempts; i++ {
		e.scan()
		if !exists(junk) {
			t.Fatalf("given up after %d attempts, want %d", i, watchAttempts)
		}
	}
	e.scan()
	reason := filepath.Join(e.dir, watchRefused, "junk.bcbundle"+reasonSuffix)
	if n := e.note(reason); !strings.Contains(n, "not imported after 5 attempts") || !strings.Contains(n, ErrLocked.Error()) {
		t.Errorf("reason %q", n)
	}
	if exists(junk) {
		t.Error("the file given up is still in the drop folder")
	}

	busy := e.drop(good, "busy.bcbundle")
	e.scan()
	e.scan()
	e.scan()
	if !exists(busy) {
		t.Fatal("imported while the state directory was held")
	}
	held.Close()
	closed = true
	e.scan()
	if exists(busy) || !exists(filepath.Join(e.dir, watchImported, "busy.bcbundle")) {
		t.Fatal("not imported once the state directory was free")
	}
	if c := e.componentState(); c.Staged == nil || c.Staged.Version != "1.1.0" {
		t.Errorf("after the retry: %+v", c)
	}
}

// TestStatusLastImport: on a PC whose repository cannot be reached, an
// imported bundle keeps status healthy while its window is open (a failed
// check is expected there); once a check succeeds after it, the online
// rules apply again.
func TestStatusLastImport(t *testing.T) {
	t.Parallel()
	e := newDropEnvUpdate(t)
	file := e.bundle("nc.bcbundle")
	down := func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	}
	e.setHook(down)
	if err := e.check(); err == nil {
		t.Fatal("check of an unreachable repository succeeded")
	}
	r := e.statusAt(time.Now())
	if r.LastImport != nil {
		t.Fatalf("last import before any: %+v", r.LastImport)
	}
	if r.Health != HealthAttention || !hasProblem(r, "failed") {
		t.Fatalf("online rules before an import: %s %q", r.Health, r.Problems)
	}
	if _, err := e.importBundle(file, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := e.check(); err == nil {
		t.Fatal("check of an unreachable repository succeeded")
	}
	r = e.statusAt(time.Now())
	if r.Health != HealthOK || len(r.Problems) != 0 || r.LastImport == nil || r.LastImport.Bundle != "nc.bcbundle" || r.LastImport.Outcome != ImportStaged {
		t.Fatalf("after the import: %s %q %+v", r.Health, r.Problems, r.LastImport)
	}
	expires := r.LastImport.Expires
	r = e.statusAt(expires)
	if r.Health != HealthAttention || !hasProblem(r, "the last bundle, nc.bcbundle (made ") {
		t.Errorf("at the end of the window: %s %q", r.Health, r.Problems)
	}
	// Online again: a successful check is newer than the import (both
	// are recorded to the second: the check comes in a later one).
	time.Sleep(time.Until(r.LastImport.At.Add(time.Second)))
	e.setHook(nil)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	r = e.statusAt(expires.Add(time.Minute))
	if hasProblem(r, "the last bundle") || !hasProblem(r, "the last successful check was at") {
		t.Errorf("online again, after the window: %q", r.Problems)
	}
	if r.LastImport == nil || !r.LastImport.Expired {
		t.Errorf("last import still shown, expired: %+v", r.LastImport)
	}
}

// TestWatchDirChecks: a drop folder must be an existing directory outside
// the state directory (a one-line usage error otherwise), and config set
// watch_dir checks the same.
func TestWatchDirChecks(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(t.TempDir(), "missing"), "no such directory"},
		{file, "is a file, not a directory"},
		{"relative", "want the absolute path of a directory"},
		{e.state, "inside the agent's state directory"},
		{filepath.Join(e.state, "tuf"), "inside the agent's state directory"},
	} {
		err := CheckWatchDir("--watch", tc.dir, e.state)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want a one-line usage error with %q", tc.dir, err, tc.want)
		}
		if err := Run(context.Background(), e.state, nil, RunOptions{WatchDir: tc.dir, Cycles: 1}); !errors.Is(err, ErrUsage) {
			t.Errorf("Run with --watch %s: %v, want a usage error", tc.dir, err)
		}
	}
	good := t.TempDir()
	if err := CheckWatchDir("--watch", good, e.state); err != nil {
		t.Errorf("a good drop folder: %v", err)
	}
	e.do(func(a *Agent) error {
		if _, _, err := a.SetConfig("watch_dir", file); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "watch_dir "+file+" is a file") {
			t.Errorf("config set watch_dir to a file: %v", err)
		}
		if _, after, err := a.SetConfig("watch_dir", good); err != nil || after != good {
			t.Errorf("config set watch_dir: %q %v", after, err)
		}
		if _, after, err := a.SetConfig("watch_dir", ""); err != nil || after != "" {
			t.Errorf("config set watch_dir \"\": %q %v", after, err)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(good, watchImported)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("checking a drop folder wrote into it")
	}
}

// TestRunWatchesDropFolder: the service (Run) with a drop folder and an
// unreachable repository imports a bundle dropped while it runs; its
// failing polls do no harm.
func TestRunWatchesDropFolder(t *testing.T) {
	t.Parallel()
	e := newDropEnvUpdate(t)
	file := e.bundle("nc.bcbundle")
	e.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, e.state, nil, RunOptions{WatchDir: e.dir, WatchEvery: 20 * time.Millisecond, MinBackoff: time.Hour, Interval: time.Hour})
	}()
	e.drop(file, "nc.bcbundle")
	moved := filepath.Join(e.dir, watchImported, "nc.bcbundle")
	deadline := time.Now().Add(2 * time.Minute)
	for !exists(moved+resultSuffix) && time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !exists(moved) {
		t.Fatal("the service did not import the dropped bundle")
	}
	if c := e.componentState(); c.Staged == nil || c.Staged.Version != "1.1.0" {
		t.Errorf("after the service imported: %+v", c)
	}
}

// TestRunAppliesOfflineInWindow: on a PC that lives on bundles, a release
// imported outside the apply window is installed by the service's poll in
// the window although the repository cannot be reached; the poll's
// failure does not stop it.
func TestRunAppliesOfflineInWindow(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, func(c *Config) {
		c.Policies = map[string]Policy{flowComp: PolicyAuto}
		c.ApplyWindow = "02:00-03:00"
	})
	e.publish("1.0.0")
	e.install("1.0.0")
	e.publish("1.1.0")
	file := e.bundle("nc.bcbundle")
	e.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	if _, err := e.importBundle(file, time.Time{}); err != nil {
		t.Fatal(err)
	}
	y, m, d := time.Now().Date()
	outside := time.Date(y, m, d+1, 12, 0, 0, 0, time.Local)
	inside := time.Date(y, m, d+1, 2, 30, 0, 0, time.Local)
	for _, tc := range []struct {
		now  time.Time
		want string
	}{{outside, "1.0.0"}, {inside, "1.1.0"}} {
		now := tc.now
		if err := Run(context.Background(), e.state, nil, RunOptions{Cycles: 1, Now: func() time.Time { return now }}); err != nil {
			t.Fatalf("Run at %s: %v", now, err)
		}
		if got := e.current(); got != tc.want {
			t.Fatalf("after a poll at %s: current %s, want %s", now.Format("15:04"), got, tc.want)
		}
	}
	var lc *CheckResult
	e.do(func(a *Agent) error { lc = a.lastCheck(); return nil })
	if lc == nil || lc.OK || lc.Failure != CheckUnreachable {
		t.Errorf("the polls' checks: %+v, want unreachable", lc)
	}
}
