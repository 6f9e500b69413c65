package client

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/repo"
)

// flowTarballCheck is a release whose health check exits with code.
func flowTarballCheck(t *testing.T, v string, code int) []byte {
	return testutil.TarGz(t,
		testutil.TarEntry{Name: "bin/notification-client", Body: "#!/bin/sh\necho " + v + "\n", Mode: 0o755},
		testutil.TarEntry{Name: "bin/health", Body: "#!/bin/sh\necho checking " + v + "\nexit " + string(rune('0'+code)) + "\n", Mode: 0o755},
		testutil.TarEntry{Name: "VERSION", Body: v + "\n"})
}

// TestFlowHealthCheckRollsBack: a release whose health check fails is put
// back on the old version, marked failed, and not offered again; one whose
// health check passes installs.
func TestFlowHealthCheckRollsBack(t *testing.T) {
	// Not parallel: it runs child processes, and a child forked while
	// another test's agent holds its lock keeps a copy of the lock until
	// it execs, which that test would see as another agent.
	e := newFlowEnv(t, nil)
	withCheck := func(o *flowReleaseOptions) { o.HealthCheck = []string{"bin/health", "--quick"} }
	e.publishWith("1.0.0", flowArtifact("1.0.0"), flowTarballCheck(t, "1.0.0", 0), withCheck)
	e.install("1.0.0")

	e.publishWith("1.1.0", flowArtifact("1.1.0"), flowTarballCheck(t, "1.1.0", 3), withCheck)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	err := e.apply(ApplyOptions{})
	if err == nil {
		t.Fatal("a release whose health check fails was applied without error")
	}
	if !strings.Contains(err.Error(), "bin/health") {
		t.Errorf("error does not name the health check: %v", err)
	}
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("after a failed health check current is %q", got)
	}
	c := e.componentState()
	if c.Installed != "1.0.0" || c.Failed == nil || c.Failed.Version != "1.1.0" || c.LastError == "" {
		t.Fatalf("after a failed health check: %+v", c)
	}
	if st := e.statusOfComp(); st.LastError == "" {
		t.Errorf("status shows no last error: %+v", st)
	}
	e.do(func(a *Agent) error {
		list, _ := a.Notifications()
		told := false
		for _, n := range list {
			told = told || ((n.Kind == NoteRolledBack || n.Kind == NoteFailed) && strings.Contains(n.Message, "rolled back to 1.0.0"))
		}
		if !told {
			t.Errorf("notifications %+v: want one saying 1.1.0 was rolled back to 1.0.0", list)
		}
		return nil
	})
	// Not offered again.
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if c := e.componentState(); c.Available != nil {
		t.Fatalf("rolled-back release offered again: %+v", c.Available)
	}
	// A newer release replaces the failed one.
	e.publishWith("1.2.0", flowArtifact("1.2.0"), flowTarballCheck(t, "1.2.0", 0), withCheck)
	e.install("1.2.0")
	if c := e.componentState(); c.Failed != nil || c.LastError != "" {
		t.Fatalf("failure not cleared by a newer release: %+v", c)
	}
}

// TestFlowInstallerRelease: an "installer" release runs its code-signed
// installer (sh {file}); a failing installer leaves the old version.
func TestFlowInstallerRelease(t *testing.T) {
	// Not parallel: it runs child processes, and a child forked while
	// another test's agent holds its lock keeps a copy of the lock until
	// it execs, which that test would see as another agent.
	e := newFlowEnv(t, nil)
	opts := func(o *flowReleaseOptions) {
		o.Install = repo.InstallInstaller
		o.Installer = []string{"sh", "{file}"}
	}
	e.publishWith("1.0.0", "setup-1.0.0.sh", []byte("#!/bin/sh\n[ \"$BCUPDATE_VERSION\" = 1.0.0 ] || exit 9\necho ok > installed.txt\n"), opts)
	e.install("1.0.0")
	found := false
	filepath.WalkDir(e.installDir(), func(p string, d os.DirEntry, err error) error {
		found = found || (err == nil && d.Name() == "installed.txt")
		return nil
	})
	if !found {
		t.Fatal("the installer did not run (no installed.txt under the install root)")
	}

	e.publishWith("1.1.0", "setup-1.1.0.sh", []byte("#!/bin/sh\necho broken >&2\nexit 4\n"), opts)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	err := e.apply(ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("failing installer: %v", err)
	}
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("after a failing installer current is %q", got)
	}
}

// TestFlowPlainFileRelease: a release of one file is installed as is.
func TestFlowPlainFileRelease(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publishWith("1.0.0", "tool.bin", []byte("tool 1.0.0\n"), nil)
	e.install("1.0.0")
	b, err := os.ReadFile(filepath.Join(e.installDir(), flowComp, "current", "tool.bin"))
	if err != nil || string(b) != "tool 1.0.0\n" {
		t.Fatalf("installed file %q %v", b, err)
	}
}

// TestFlowZipRelease: a zip archive unpacks.
func TestFlowZipRelease(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	zip := testutil.Zip(t, testutil.TarEntry{Name: "VERSION", Body: "1.0.0\n"}, testutil.TarEntry{Name: "bin/x", Body: "x", Mode: 0o755})
	e.publishWith("1.0.0", "notification-client-1.0.0.zip", zip, nil)
	e.install("1.0.0")
	b, err := os.ReadFile(filepath.Join(e.installDir(), flowComp, "current", "VERSION"))
	if err != nil || string(b) != "1.0.0\n" {
		t.Fatalf("unpacked zip VERSION %q %v", b, err)
	}
}

// TestFlowDelta: with the installed artifact cached, the next release
// is staged from its bsdiff patch, not downloaded in full.
func TestFlowDelta(t *testing.T) {
	t.Parallel()
	testutil.NeedTool(t, "bsdiff") // bcpublish makes the patch with it
	e := newFlowEnv(t, nil)
	big := strings.Repeat("payload line that stays the same across releases\n", 4000)
	tar := func(v string) []byte {
		return testutil.TarGz(t, testutil.TarEntry{Name: "data.txt", Body: big}, testutil.TarEntry{Name: "VERSION", Body: v + "\n"})
	}
	e.publishWith("1.0.0", flowArtifact("1.0.0"), tar("1.0.0"), nil)
	e.install("1.0.0")
	e.publishWith("1.1.0", flowArtifact("1.1.0"), tar("1.1.0"), func(o *flowReleaseOptions) { o.DeltaFrom = []string{"1.0.0"} })
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	e.takeRequests()
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	paths, _ := e.takeRequests()
	for _, p := range paths {
		if strings.HasSuffix(p, flowArtifact("1.1.0")) {
			t.Errorf("full artifact downloaded although a delta applies: %v", paths)
		}
	}
	if err := e.apply(ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(e.installDir(), flowComp, "current", "VERSION"))
	if err != nil || string(b) != "1.1.0\n" {
		t.Fatalf("delta-staged release VERSION %q %v", b, err)
	}

	// A cached base that does not match: the full artifact is downloaded.
	e.publishWith("1.2.0", flowArtifact("1.2.0"), tar("1.2.0"), func(o *flowReleaseOptions) { o.DeltaFrom = []string{"1.1.0"} })
	cache := filepath.Join(e.state, "cache", flowComp, "artifact")
	if err := os.WriteFile(cache, []byte("not the base"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	e.takeRequests()
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	paths, _ = e.takeRequests()
	full := false
	for _, p := range paths {
		full = full || strings.HasSuffix(p, flowArtifact("1.2.0"))
	}
	if !full {
		t.Errorf("no full download with a wrong base: %v", paths)
	}
}

// TestFlowResumeStagesFromPartial: a partial download of the very release
// is resumed with a Range request, and the result verifies.
func TestFlowResumeStagesFromPartial(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	data := testutil.TarGz(t, testutil.TarEntry{Name: "data.bin", Body: strings.Repeat("0123456789abcdef", 8192)},
		testutil.TarEntry{Name: "VERSION", Body: "1.0.0\n"})
	res := e.publishWith("1.0.0", flowArtifact("1.0.0"), data, nil)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	dir := filepath.Join(e.state, "staging", flowComp, "1.0.0")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "release.sha256"), []byte(res.SHA256+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, flowArtifact("1.0.0")+".partial"), data[:half], 0o600)
	e.takeRequests()
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	paths, hdrs := e.takeRequests()
	ranged := false
	for i, p := range paths {
		if strings.HasSuffix(p, flowArtifact("1.0.0")) {
			ranged = ranged || strings.HasPrefix(hdrs[i].Get("Range"), "bytes="+strconv.Itoa(half)+"-")
		}
	}
	if !ranged {
		t.Fatalf("no Range request from byte %d: %v", half, paths)
	}
	c := e.componentState()
	got, err := os.ReadFile(c.Staged.File)
	if err != nil || string(got) != string(data) {
		t.Fatalf("resumed file differs (%d bytes, %v)", len(got), err)
	}

	// A partial longer than the signed length starts again from zero.
	e2 := newFlowEnv(t, nil)
	res = e2.publishWith("1.0.0", flowArtifact("1.0.0"), data, nil)
	if err := e2.check(); err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(e2.state, "staging", flowComp, "1.0.0")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "release.sha256"), []byte(res.SHA256+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, flowArtifact("1.0.0")+".partial"), append(append([]byte{}, data...), "junk"...), 0o600)
	if err := e2.stage(); err != nil {
		t.Fatal(err)
	}
	e2.do(func(a *Agent) error { _, err := a.Apply(context.Background(), flowComp, ApplyOptions{}); return err })
	if got := e2.current(); got != "1.0.0" {
		t.Fatalf("after an over-long partial current %q", got)
	}
}

// TestFlowRunServiceAutoApplies: one cycle of the service with policy
// auto and an apply window that is open installs the release; with policy
// notify it only notices it; with the window closed it only stages.
func TestFlowRunServiceAutoApplies(t *testing.T) {
	t.Parallel()
	noon := func() time.Time { return time.Date(2026, 1, 2, 12, 0, 0, 0, time.Local) }
	e := newFlowEnv(t, func(c *Config) {
		c.Policies = map[string]Policy{flowComp: PolicyAuto}
		c.ApplyWindow = "11:00-13:00"
	})
	e.publish("1.0.0")
	if err := Run(context.Background(), e.state, nil, RunOptions{Cycles: 1, Now: noon}); err != nil {
		t.Fatal(err)
	}
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("service with policy auto: current %q", got)
	}
	// The window closed: the next release is staged, not installed.
	e.publish("1.1.0")
	late := func() time.Time { return time.Date(2026, 1, 2, 20, 0, 0, 0, time.Local) }
	if err := Run(context.Background(), e.state, nil, RunOptions{Cycles: 1, Now: late}); err != nil {
		t.Fatal(err)
	}
	if c := e.componentState(); e.current() != "1.0.0" || c.Staged == nil || c.Staged.Version != "1.1.0" {
		t.Fatalf("outside the window: current %q, state %+v", e.current(), c)
	}
	// A gated release is never applied by the service.
	e.publish("1.2.0", flowGated)
	if err := Run(context.Background(), e.state, nil, RunOptions{Cycles: 1, Now: noon}); err != nil {
		t.Fatal(err)
	}
	if got := e.current(); got == "1.2.0" {
		t.Fatal("the service applied a gated release")
	}
	if c := e.componentState(); c.State != StateAwaitingAuthorization {
		t.Fatalf("gated release under the service: %+v", c)
	}

	if err := Run(context.Background(), e.state, nil, RunOptions{Cycles: -1}); err == nil {
		t.Error("negative cycles accepted")
	}
	if err := Run(context.Background(), t.TempDir(), nil, RunOptions{Cycles: 1}); err == nil {
		t.Error("run on an uninitialized directory accepted")
	}

	n := newFlowEnv(t, func(c *Config) { c.Policies = map[string]Policy{flowComp: PolicyNotify} })
	n.publish("1.0.0")
	if err := Run(context.Background(), n.state, nil, RunOptions{Cycles: 1}); err != nil {
		t.Fatal(err)
	}
	if c := n.componentState(); c.Staged != nil || c.Available == nil || n.current() != "" {
		t.Fatalf("policy notify: %+v", c)
	}
}

// TestFlowRunBacksOffOnFailure: a cycle that fails does not stop the
// service; it returns at the end of its cycles.
func TestFlowRunBacksOffOnFailure(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.srv.Close()
	err := Run(context.Background(), e.state, nil, RunOptions{Cycles: 2, MinBackoff: time.Millisecond, Interval: time.Minute})
	if err != nil {
		t.Fatalf("run with the repository down: %v", err)
	}
	e.do(func(a *Agent) error {
		list, _ := a.Notifications()
		if !flowHasNote(list, NoteRepositoryUnreachable) {
			t.Errorf("notifications %+v", list)
		}
		return nil
	})
	// Cancelled before the wait ends: Run returns nil.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Run(ctx, e.state, nil, RunOptions{Interval: time.Hour}); err != nil {
		t.Fatalf("cancelled run: %v", err)
	}
}

// TestFlowNotifyCommand: each new notification is handed to the site's
// notify command as JSON on stdin.
func TestFlowNotifyCommand(t *testing.T) {
	// Not parallel: it runs child processes, and a child forked while
	// another test's agent holds its lock keeps a copy of the lock until
	// it execs, which that test would see as another agent.
	out := filepath.Join(t.TempDir(), "notes")
	e := newFlowEnv(t, func(c *Config) {
		c.NotifyCommand = []string{"/bin/sh", "-c", "cat >> " + out + "; echo \" $BCAGENT_NOTIFICATION_KIND\" >> " + out}
	})
	e.publish("1.0.0")
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"kind":"update-available"`) || !strings.Contains(string(b), " update-available") {
		t.Fatalf("notify command got %q", b)
	}
}

// TestFlowSelfUpdate: the agent's own component replaces the binary at
// its self path once the new one answers --version; a binary that does
// not is put back and the release is marked failed; without a self path
// apply refuses.
func TestFlowSelfUpdate(t *testing.T) {
	// Not parallel: it runs child processes, and a child forked while
	// another test's agent holds its lock keeps a copy of the lock until
	// it execs, which that test would see as another agent.
	e := newFlowEnv(t, func(c *Config) { c.Components = []string{SelfComponent} })
	bin := filepath.Join(t.TempDir(), "bcagent")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho bcagent 1.0.0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pub := func(v, body string) {
		e.publishWith(v, "bcagent", []byte(body), func(o *flowReleaseOptions) {
			o.Component = SelfComponent
			o.Install = repo.InstallSelf
		})
	}
	applySelf := func(self string) (bool, error) {
		var restart bool
		err := e.do(func(a *Agent) error {
			if _, err := a.Check(context.Background()); err != nil {
				return err
			}
			if _, err := a.Stage(context.Background(), ""); err != nil {
				return err
			}
			a.SetSelfPath(self)
			_, err := a.Apply(context.Background(), "", ApplyOptions{})
			restart = a.RestartRequired()
			return err
		})
		return restart, err
	}

	pub("1.1.0", "#!/bin/sh\necho bcagent 1.1.0\n")
	if _, err := applySelf(""); err == nil {
		t.Fatal("self-update without a self path succeeded")
	}
	restart, err := applySelf(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !restart {
		t.Error("no restart required after a self-update")
	}
	if b, _ := os.ReadFile(bin); !strings.Contains(string(b), "1.1.0") {
		t.Fatalf("binary not replaced: %q", b)
	}

	pub("1.2.0", "#!/bin/sh\necho something else\n")
	restart, err = applySelf(bin)
	if err == nil {
		t.Fatal("a self-update whose binary does not come up succeeded")
	}
	if restart {
		t.Error("restart required after a refused self-update")
	}
	if b, _ := os.ReadFile(bin); !strings.Contains(string(b), "1.1.0") {
		t.Fatalf("old binary not put back: %q", b)
	}
	var c *ComponentState
	e.do(func(a *Agent) error {
		st, err := a.loadState()
		if err != nil {
			return err
		}
		c = st.Components[SelfComponent]
		return nil
	})
	if c.Installed != "1.1.0" || c.Failed == nil || c.Failed.Version != "1.2.0" {
		t.Fatalf("after a refused self-update: %+v", c)
	}
	if _, err := SelfPath(); err != nil {
		t.Errorf("SelfPath: %v", err)
	}
	if err := checkSelf(context.Background(), filepath.Join(t.TempDir(), "missing"), "1.0.0"); err == nil {
		t.Error("checkSelf of a missing binary succeeded")
	}
}
