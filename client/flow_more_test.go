package client

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/repo"
)

// TestFlowReadOnlyView: the view reports status, activity, notifications
// and the logs without a lock and writes nothing; it warns about drift in
// features.json and `current`.
func TestFlowReadOnlyView(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0", flowFree)
	e.install("1.0.0")
	e.publish("1.1.0", flowFree)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}

	before := testutil.HashTree(t, e.state)
	v, err := OpenReadOnly(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := v.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Device.ID != "INST-0042" || !st.Device.PHI || st.Repository.URL != e.srv.URL || st.Repository.TimestampVersion == 0 || st.Repository.Expires == nil {
		t.Fatalf("view status device/repository %+v %+v", st.Device, st.Repository)
	}
	if len(st.Components) != 1 || *st.Components[0].Installed != "1.0.0" || st.Components[0].Available == nil || *st.Components[0].Available != "1.1.0" {
		t.Fatalf("view status components %+v", st.Components)
	}
	if st.Activity == nil || st.Activity.Busy {
		t.Fatalf("view activity %+v (no agent holds the directory)", st.Activity)
	}
	if len(st.Warnings) != 0 {
		t.Fatalf("warnings on a clean state: %v", st.Warnings)
	}
	list, err := v.Notifications()
	if err != nil {
		t.Fatal(err)
	}
	if !flowHasNote(list, NoteUpdateAvailable) {
		t.Errorf("view notifications %+v: want update-available", list)
	}
	rep, err := v.VerifyLogs()
	if err != nil || rep.AuditEntries == 0 {
		t.Fatalf("view verify %+v %v", rep, err)
	}
	au, co, err := v.ExportLogs()
	if err != nil || len(au) != rep.AuditEntries || len(co) != rep.ConsentEntries {
		t.Fatalf("view export %d %d %v", len(au), len(co), err)
	}
	if after := testutil.HashTree(t, e.state); after != before {
		t.Fatal("the read-only view changed the state directory")
	}

	// While an agent holds the lock, the view says so.
	a := e.open()
	act, err := v.Activity()
	if err != nil || !act.Busy {
		t.Errorf("activity with an agent open: %+v %v", act, err)
	}
	if a.Config().DeviceID != "INST-0042" {
		t.Errorf("agent config %+v", a.Config())
	}
	a.Close()

	// features.json edited by hand: the view warns, the next agent puts
	// it back.
	ff := filepath.Join(e.installDir(), flowComp, "features.json")
	if err := os.WriteFile(ff, []byte(`{"active":["dark-mode","remote-file-transfer"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = v.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) == 0 || !strings.Contains(strings.Join(st.Warnings, "\n"), "features.json") {
		t.Fatalf("no drift warning for features.json: %v", st.Warnings)
	}
	e.do(func(a *Agent) error {
		active, err := a.ActiveFeatures(flowComp)
		if err != nil || len(active) != 1 || active[0] != flowFree.ID {
			t.Errorf("reconcile left %v %v", active, err)
		}
		return nil
	})

	// A damaged audit log: the view's verify names it.
	p := filepath.Join(e.state, "audit.jsonl")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), "update-available", "update-availablX", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyLogs(); err == nil {
		t.Fatal("view verify accepted a tampered audit log")
	}
	if _, _, err := v.ExportLogs(); err == nil {
		t.Fatal("view export accepted a tampered audit log")
	}
}

// TestFlowTamperedArtifactIsVerificationFailure: an artifact changed on
// the server after it was signed is refused at stage with ErrVerification,
// audited and notified; nothing is staged or installed.
func TestFlowTamperedArtifactIsVerificationFailure(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	res := e.publish("1.0.0")
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	// Replace the stored artifact's bytes (same length, other content).
	var stored string
	filepath.WalkDir(filepath.Join(e.repoDir, "targets"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, flowArtifact("1.0.0")) {
			stored = p
		}
		return nil
	})
	if stored == "" {
		t.Fatal("stored artifact not found")
	}
	bad := make([]byte, res.Length)
	if err := os.WriteFile(stored, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	err := e.stage()
	if !errors.Is(err, ErrVerification) {
		t.Fatalf("stage of a tampered artifact: %v, want ErrVerification", err)
	}
	if c := e.componentState(); c.Staged != nil {
		t.Fatalf("tampered artifact staged: %+v", c.Staged)
	}
	e.do(func(a *Agent) error {
		list, _ := a.Notifications()
		if !flowHasNote(list, NoteVerificationFailure) {
			t.Errorf("no verification-failure notification: %+v", list)
		}
		au, _, err := a.ExportLogs()
		if err != nil {
			t.Fatal(err)
		}
		if !flowAuditHas(au, EventVerificationFailure) {
			t.Error("verification failure not audited")
		}
		return nil
	})
	if got := e.current(); got != "" {
		t.Fatalf("installed %q", got)
	}
}

// TestFlowTamperedMetadataIsVerificationFailure: timestamp.json re-signed
// by nobody (its signed part edited) is refused with ErrVerification.
func TestFlowTamperedMetadataIsVerificationFailure(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	p := filepath.Join(e.repoDir, "metadata", "timestamp.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	signed := m["signed"].(map[string]any)
	signed["version"] = signed["version"].(float64) + 7
	data, _ = json.Marshal(m)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err = e.check()
	if !errors.Is(err, ErrVerification) {
		t.Fatalf("check with a tampered timestamp: %v, want ErrVerification", err)
	}
	e.do(func(a *Agent) error {
		list, _ := a.Notifications()
		if !flowHasNote(list, NoteVerificationFailure) {
			t.Errorf("notifications %+v: want verification-failure", list)
		}
		return nil
	})
}

// TestFlowExpiredMetadata: a repository whose metadata has expired is
// refused (ErrVerification, metadata-expired), what is installed stays.
func TestFlowExpiredMetadata(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	e.install("1.0.0")
	// Refresh the repository (targets too) as if it were two months ago:
	// what it signs then has expired by now. bcpublish refresh signs at
	// the time it runs, and a faked clock (faketime) does not reach a Go
	// program, so the test signs with package repo and the repository's
	// own keys, as bcpublish refresh --targets does.
	r, err := repo.LoadStaleTargets(e.readMetadata)
	if err != nil {
		t.Fatal(err)
	}
	r.Taken = func(file string) (bool, error) {
		_, err := os.Stat(filepath.Join(e.repoDir, "metadata", file))
		return err == nil, nil
	}
	if err := r.MarkAllDirty(); err != nil {
		t.Fatal(err)
	}
	files, err := r.Commit(e.roleKeys(repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp), time.Now().Add(-60*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	e.writeMetadata(files)
	err = e.check()
	if !errors.Is(err, ErrVerification) {
		t.Fatalf("check of expired metadata: %v, want ErrVerification", err)
	}
	e.do(func(a *Agent) error {
		list, _ := a.Notifications()
		if !flowHasNote(list, NoteMetadataExpired) {
			t.Errorf("notifications %+v: want metadata-expired", list)
		}
		return nil
	})
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("current %q after an expired check", got)
	}
}

// TestFlowUnreachableRepository: a repository that is gone is a network
// failure (repository-unreachable), not a verification failure.
func TestFlowUnreachableRepository(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	e.srv.Close()
	err := e.stage()
	if err == nil || errors.Is(err, ErrVerification) {
		t.Fatalf("stage with the repository down: %v", err)
	}
	e.do(func(a *Agent) error {
		list, _ := a.Notifications()
		if !flowHasNote(list, NoteRepositoryUnreachable) {
			t.Errorf("notifications %+v: want repository-unreachable", list)
		}
		return nil
	})
}

// TestFlowInitRefusesBadConfig: Init validates the configuration before it
// writes anything.
func TestFlowInitRefusesBadConfig(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	cases := map[string]func(*Config){
		"no url":             func(c *Config) { c.RepositoryURL = "" },
		"ftp url":            func(c *Config) { c.RepositoryURL = "ftp://127.0.0.1/repo" },
		"plain http remote":  func(c *Config) { c.RepositoryURL = "http://updates.example.com/repo" },
		"query":              func(c *Config) { c.RepositoryURL += "?x=1" },
		"credentials":        func(c *Config) { c.RepositoryURL = "http://u:p@127.0.0.1/repo" },
		"no components":      func(c *Config) { c.Components = nil },
		"bad component":      func(c *Config) { c.Components = []string{"../x"} },
		"component twice":    func(c *Config) { c.Components = []string{flowComp, flowComp} },
		"bad platform":       func(c *Config) { c.Platform = "no platform" },
		"bad channel":        func(c *Config) { c.Channel = "a/b" },
		"no device id":       func(c *Config) { c.DeviceID = " " },
		"long device id":     func(c *Config) { c.DeviceID = strings.Repeat("x", 129) },
		"no device model":    func(c *Config) { c.DeviceModel = "" },
		"relative trust":     func(c *Config) { c.TrustDir = "" },
		"empty phi class":    func(c *Config) { c.PHIDeviceClasses = []string{" "} },
		"bad poll interval":  func(c *Config) { c.PollInterval = "1s" },
		"bad window":         func(c *Config) { c.ApplyWindow = "25:00-26:00" },
		"empty window":       func(c *Config) { c.ApplyWindow = "02:00-02:00" },
		"policy unknown":     func(c *Config) { c.Policies = map[string]Policy{"other": PolicyAuto} },
		"policy bad":         func(c *Config) { c.Policies = map[string]Policy{flowComp: "sometimes"} },
		"negative max rate":  func(c *Config) { c.MaxRate = -1 },
		"min rate too small": func(c *Config) { c.MinRate = 1 },
		"bad allowed host":   func(c *Config) { c.AllowedHosts = []string{"a b/c"} },
		"negative min pol":   func(c *Config) { c.MinPolicyVersion = -1 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := e.config()
			mutate(&cfg)
			dir := filepath.Join(t.TempDir(), "state")
			err := Init(dir, InitOptions{RootFile: e.rootFile(), Config: cfg})
			if err == nil {
				t.Fatal("accepted")
			}
			if _, serr := os.Stat(filepath.Join(dir, "config.json")); serr == nil {
				t.Fatal("config.json written for a refused configuration")
			}
		})
	}
	// Init's own refusals.
	if err := Init("", InitOptions{RootFile: e.rootFile(), Config: e.config()}); err == nil {
		t.Error("init without a state directory accepted")
	}
	if err := Init(filepath.Join(t.TempDir(), "s"), InitOptions{Config: e.config()}); err == nil {
		t.Error("init without a root accepted")
	}
	notRoot := filepath.Join(t.TempDir(), "root.json")
	os.WriteFile(notRoot, []byte(`{"signed":{}}`), 0o600)
	if err := Init(filepath.Join(t.TempDir(), "s"), InitOptions{RootFile: notRoot, Config: e.config()}); err == nil {
		t.Error("init with a bad root accepted")
	}
	if err := Init(e.state, InitOptions{RootFile: e.rootFile(), Config: e.config()}); err == nil {
		t.Error("init of an initialized directory accepted")
	}
	// Open of a directory that was never initialized fails.
	if _, err := Open(t.TempDir(), nil); err == nil {
		t.Error("open of an empty directory accepted")
	}
	if _, err := OpenReadOnly(t.TempDir(), nil); err == nil {
		t.Error("read-only open of an empty directory accepted")
	}
	// A second agent on the same directory is refused while one holds it.
	a := e.open()
	defer a.Close()
	if _, err := Open(e.state, nil); !errors.Is(err, ErrLocked) {
		t.Errorf("second open: %v, want ErrLocked", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := OpenWait(ctx, e.state, nil, time.Minute); err == nil {
		t.Error("OpenWait with a cancelled context while locked succeeded")
	}
}
