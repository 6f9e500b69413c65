package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// srComponent is status() of the one component.
func (e *env) srComponent() *client.ComponentStatus {
	e.t.Helper()
	return &e.status().Components[0]
}

func (e *env) srNotifications() []client.Notification {
	e.t.Helper()
	var list []client.Notification
	if err := e.do(func(a *client.Agent) (err error) { list, err = a.Notifications(); return err }); err != nil {
		e.t.Fatal(err)
	}
	return list
}

func (e *env) srAuditEvents() []client.EventKind {
	e.t.Helper()
	var entries []client.LogEntry
	if err := e.do(func(a *client.Agent) (err error) { entries, _, err = a.ExportLogs(); return err }); err != nil {
		e.t.Fatalf("audit log: %v", err)
	}
	var out []client.EventKind
	for _, le := range entries {
		var ev client.AuditEvent
		json.Unmarshal(le.Entry, &ev)
		out = append(out, ev.Event)
	}
	return out
}

func srHasKind(list []client.Notification, kind client.NoteKind) bool {
	return slices.ContainsFunc(list, func(n client.Notification) bool { return n.Kind == kind })
}

// TestStateRecover damages state.json after an install: status still
// answers with the installed version, check and an update still work, and
// the damage is reported (notification and audit entry).
func TestStateRecover(t *testing.T) {
	statePath := func(e *env) string { return filepath.Join(e.state, "state.json") }
	prevPath := func(e *env) string { return filepath.Join(e.state, "state.json.prev") }
	tests := []struct {
		name   string
		damage func(t *testing.T, e *env)
		// rebuilt: no usable copy, so the release metadata is re-learned
		// by the next check.
		rebuilt bool
	}{
		{"truncated to 10 bytes", func(t *testing.T, e *env) {
			if err := os.Truncate(statePath(e), 10); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"truncated, last good copy removed", func(t *testing.T, e *env) {
			os.Truncate(statePath(e), 10)
			if err := os.Remove(prevPath(e)); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"removed with its copy", func(t *testing.T, e *env) {
			os.Remove(statePath(e))
			os.Remove(prevPath(e))
		}, true},
		{"JSON of the wrong shape", func(t *testing.T, e *env) {
			os.WriteFile(statePath(e), []byte(`{"components": ["notification-client", 1]}`), 0o600)
		}, false},
		{"JSON of the wrong shape, copy too", func(t *testing.T, e *env) {
			os.WriteFile(statePath(e), []byte(`{"components": {"notification-client": {"installed": "../../../etc", "state": "up-to-date"}}}`), 0o600)
			os.WriteFile(prevPath(e), []byte(`[{"installed": "1.0.0"}]`), 0o600)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			tt.damage(t, e)

			// status always answers, from the copy or the install tree.
			c := e.srComponent()
			if c.Installed == nil || *c.Installed != "1.0.0" || c.State != client.StateUpToDate {
				t.Fatalf("status after damage: %+v", c)
			}
			if c.ReleaseUnknown != tt.rebuilt {
				t.Errorf("installed_release_unknown = %v, want %v", c.ReleaseUnknown, tt.rebuilt)
			}
			if !srHasKind(e.srNotifications(), client.NoteStateRecovered) {
				t.Errorf("no %s notification: %+v", client.NoteStateRecovered, e.srNotifications())
			}
			if !slices.Contains(e.srAuditEvents(), client.EventStateRecovered) {
				t.Error("no audit entry for the recovery")
			}

			// check re-learns the release metadata from verified TUF metadata.
			if err := e.check(); err != nil {
				t.Fatalf("check after damage: %v", err)
			}
			if c := e.srComponent(); c.ReleaseUnknown || *c.Installed != "1.0.0" {
				t.Fatalf("status after check: %+v", c)
			}
			var st client.State
			b, _ := os.ReadFile(statePath(e))
			if err := json.Unmarshal(b, &st); err != nil || st.Components[component].InstalledRelease == nil ||
				st.Components[component].InstalledRelease.Path != "notification-client/linux-amd64/1.0.0/"+artifactName("1.0.0") {
				t.Fatalf("state.json after check: %v %s", err, b)
			}
			if srHasKind(e.srNotifications(), client.NoteStateRecovered) {
				t.Error("the recovery notice outlived the re-learned metadata")
			}

			// A later update works and keeps 1.0.0 to roll back to.
			e.publish("1.1.0")
			e.mustInstall("1.1.0")
			if err := e.do(func(a *client.Agent) error { _, err := a.Rollback(context.Background(), component); return err }); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			if e.current() != "1.0.0" {
				t.Fatalf("rollback left current at %s", e.current())
			}
			if _, err := os.Stat(prevPath(e)); err != nil {
				t.Errorf("no last good copy after saving: %v", err)
			}
		})
	}
}

// TestStateRecoverAfterRollback: the install tree is what the rebuild
// reads; after a rollback the previous version is the newer one.
func TestStateRecoverAfterRollback(t *testing.T) {
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	e.publish("1.1.0")
	e.mustInstall("1.1.0")
	os.WriteFile(filepath.Join(e.state, "state.json"), []byte("\x00\x00\x00"), 0o600)
	os.WriteFile(filepath.Join(e.state, "state.json.prev"), []byte("{"), 0o600)
	if c := e.srComponent(); *c.Installed != "1.1.0" || !c.ReleaseUnknown {
		t.Fatalf("status: %+v", c)
	}
	// Rollback works before any check (without release metadata) ...
	if err := e.do(func(a *client.Agent) error { _, err := a.Rollback(context.Background(), component); return err }); err != nil {
		t.Fatalf("rollback with a rebuilt state: %v", err)
	}
	if e.current() != "1.0.0" {
		t.Fatalf("current %s", e.current())
	}
	// ... and check learns both releases again.
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	var st client.State
	b, _ := os.ReadFile(filepath.Join(e.state, "state.json"))
	json.Unmarshal(b, &st)
	if c := st.Components[component]; c.Installed != "1.0.0" || c.Previous != "1.1.0" || c.InstalledRelease == nil || c.PreviousRelease == nil {
		t.Fatalf("state after check: %s", b)
	}
}

// TestStateRecoverCLIStatus: `bcagent status` answers with a truncated
// state.json and no copy.
func TestStateRecoverCLIStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bcagent")
	}
	bin := buildAgent(t, "1.0.0")
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	os.Truncate(filepath.Join(e.state, "state.json"), 10)
	os.Remove(filepath.Join(e.state, "state.json.prev"))
	out, err := exec.Command(bin, "--state", e.state, "status", "--json").CombinedOutput()
	// It answers, and says the agent needs attention (exit 1): the state
	// is rebuilt, and no check has vouched for it.
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), `"health": "attention"`) {
		t.Fatalf("bcagent status: %v (want exit 1, health attention)\n%s", err, out)
	}
	if !strings.Contains(string(out), `"installed":"1.0.0"`) && !strings.Contains(string(out), `"installed": "1.0.0"`) {
		t.Fatalf("bcagent status: %s", out)
	}
}

// srOutsideDir is a directory outside the state directory with a victim file
// where the agent would stage notification-client, and its fingerprint.
func srOutsideDir(t *testing.T) (string, func() string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, component, "1.1.0"), 0o700)
	os.WriteFile(filepath.Join(dir, component, "victim.txt"), []byte("do not touch"), 0o600)
	os.WriteFile(filepath.Join(dir, component, "1.1.0", "release.sha256"), []byte("victim\n"), 0o600)
	return dir, func() string { return testutil.HashTree(t, dir) }
}

// TestStageRefusesSymlinkedStaging: staging/ replaced by a symlink to a
// directory outside the state directory after Open (so below any check
// Open makes): stage fails with an error naming the link, the victim file
// is untouched, no file appears outside, nothing installed changes.
func TestStageRefusesSymlinkedStaging(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	e.publish("1.1.0")
	outside, fingerprint := srOutsideDir(t)
	before, beforeInstall := fingerprint(), testutil.HashTree(t, e.install)
	err := e.do(func(a *client.Agent) error {
		staging := filepath.Join(e.state, "staging")
		if err := os.RemoveAll(staging); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, staging); err != nil {
			t.Fatal(err)
		}
		_, err := a.Stage(context.Background(), "")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), outside) {
		t.Fatalf("stage through a symlinked staging: %v", err)
	}
	t.Logf("stage: %v", err)
	if after := fingerprint(); after != before {
		t.Fatal("stage changed the directory outside the state directory")
	}
	if testutil.HashTree(t, e.install) != beforeInstall || e.current() != "1.0.0" {
		t.Fatal("the install tree changed")
	}
	// (Open itself may refuse a symlinked staging/ now: read state.json.)
	var st client.State
	b, _ := os.ReadFile(filepath.Join(e.state, "state.json"))
	if err := json.Unmarshal(b, &st); err != nil || st.Components[component].Staged != nil {
		t.Fatalf("state.json after the refused stage: %v %s", err, b)
	}
}

// TestApplyRefusesSymlinkedStaging: a release staged properly, then
// staging/ swapped for a symlink to a copy outside (contents an attacker
// controls): apply refuses the staged file and nothing is installed.
func TestApplyRefusesSymlinkedStaging(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	e.publish("1.1.0")
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "staging")
	staging := filepath.Join(e.state, "staging")
	copyTree(t, staging, outside)
	before, beforeInstall := testutil.HashTree(t, outside), testutil.HashTree(t, e.install)
	err := e.do(func(a *client.Agent) error {
		if err := os.RemoveAll(staging); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, staging); err != nil {
			t.Fatal(err)
		}
		_, err := a.Apply(context.Background(), "", client.ApplyOptions{})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("apply through a symlinked staging: %v", err)
	}
	t.Logf("apply: %v", err)
	if testutil.HashTree(t, outside) != before {
		t.Fatal("apply changed the directory outside the state directory")
	}
	if testutil.HashTree(t, e.install) != beforeInstall || e.current() != "1.0.0" {
		t.Fatal("the install tree changed")
	}
}

// TestStateRecoverBins: with hashed bins the release of the installed
// version is found again through the release index.
func TestStateRecoverBins(t *testing.T) {
	e := newEnvBins(t, 8, nil)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	os.Remove(filepath.Join(e.state, "state.json"))
	os.Remove(filepath.Join(e.state, "state.json.prev"))
	if c := e.srComponent(); *c.Installed != "1.0.0" || !c.ReleaseUnknown {
		t.Fatalf("status: %+v", c)
	}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if c := e.srComponent(); c.ReleaseUnknown {
		t.Fatalf("release metadata not re-learned with hashed bins: %+v", c)
	}
	e.publish("1.1.0")
	e.mustInstall("1.1.0")
}
