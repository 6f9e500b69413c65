package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/repo"
)

const testComp = "notification-client"

// stateAgent is an Agent on a fresh state directory and install root, with
// no trust or network: enough for state, journal and staging.
func stateAgent(t *testing.T, components ...string) *Agent {
	t.Helper()
	if len(components) == 0 {
		components = []string{testComp}
	}
	dir := filepath.Join(t.TempDir(), "state")
	install := filepath.Join(dir, "install")
	for _, d := range []string{dir, filepath.Join(dir, stagingRoot), install} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &Config{Components: components, Platform: "linux-amd64", DeviceID: "INST-0042", DeviceModel: "DxH 900", InstallRoot: install}
	return &Agent{dir: dir, cfg: cfg, log: slog.New(slog.DiscardHandler)}
}

func testRelease(comp, v string) *Release {
	return &Release{
		Path: repo.ArtifactPath(comp, "linux-amd64", v, comp+"-"+v+".tar.gz"), Version: v,
		SHA256: strings.Repeat("ab", 32), Length: 10,
		Meta: &repo.Release{Component: comp, Version: v, Platform: "linux-amd64", Install: repo.InstallArchive, Codesign: repo.CodesignCMS},
	}
}

// installed puts versions in the install tree, current naming the first.
func installed(t *testing.T, a *Agent, comp string, current string, others ...string) {
	t.Helper()
	compDir := filepath.Join(a.cfg.InstallRoot, comp)
	for _, v := range append([]string{current}, others...) {
		if err := os.MkdirAll(filepath.Join(compDir, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := switchCurrent(compDir, current); err != nil {
		t.Fatal(err)
	}
}

// goodState is what the agent saves after installing 1.1.0 over 1.0.0.
func goodState(comp string) *State {
	return &State{Components: map[string]*ComponentState{comp: {
		Installed: "1.1.0", Previous: "1.0.0",
		InstalledRelease: testRelease(comp, "1.1.0"), PreviousRelease: testRelease(comp, "1.0.0"),
		Pinned: "1.1.0", State: StateUpToDate,
	}}}
}

func writeStateFile(t *testing.T, a *Agent, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(a.dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func stateJSON(t *testing.T, st *State) []byte {
	t.Helper()
	b, err := marshalState(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func notes(t *testing.T, a *Agent) []Notification {
	t.Helper()
	list, err := a.Notifications()
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func hasNote(list []Notification, kind NoteKind) bool {
	return slices.ContainsFunc(list, func(n Notification) bool { return n.Kind == kind })
}

func auditHas(t *testing.T, a *Agent, event EventKind) bool {
	t.Helper()
	evs, err := a.auditEvents()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(evs, func(e AuditEvent) bool { return e.Event == event })
}

func TestLoadStateRecovers(t *testing.T) {
	good := func(t *testing.T) []byte { return stateJSON(t, goodState(testComp)) }
	truncated := func(t *testing.T) []byte { return good(t)[:10] }
	tree := func(t *testing.T, a *Agent) { installed(t, a, testComp, "1.1.0", "1.0.0") }
	type want struct {
		installed, previous, pinned string
		releaseKnown                bool
		recovered                   bool // warning + audit entry
		unwritable                  bool // recovered, but state.json cannot be replaced
	}
	fromCopy := want{installed: "1.1.0", previous: "1.0.0", pinned: "1.1.0", releaseKnown: true, recovered: true}
	rebuilt := want{installed: "1.1.0", previous: "1.0.0", recovered: true}
	tests := []struct {
		name  string
		setup func(t *testing.T, a *Agent)
		want  want
	}{
		{"state.json good", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, good(t))
		}, want{installed: "1.1.0", previous: "1.0.0", pinned: "1.1.0", releaseKnown: true}},
		{"fresh: no state, empty tree", func(t *testing.T, a *Agent) {}, want{}},
		{"truncated, last good copy", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, truncated(t))
			writeStateFile(t, a, statePrevFile, good(t))
		}, fromCopy},
		{"missing, last good copy", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, statePrevFile, good(t))
		}, fromCopy},
		{"empty, last good copy", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, nil)
			writeStateFile(t, a, statePrevFile, good(t))
		}, fromCopy},
		{"truncated, no copy", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, truncated(t))
		}, rebuilt},
		{"truncated, copy truncated too", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, truncated(t))
			writeStateFile(t, a, statePrevFile, truncated(t))
		}, rebuilt},
		{"missing, no copy, versions installed", func(t *testing.T, a *Agent) { tree(t, a) }, rebuilt},
		{"wrong shape: array", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, []byte(`[1, 2, 3]`))
		}, rebuilt},
		{"wrong shape: no components", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, []byte(`{"hello": "world"}`))
		}, rebuilt},
		{"wrong shape: components is a number", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, []byte(`{"components": 5}`))
		}, rebuilt},
		{"wrong shape: a string", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, []byte(`"state"`))
			writeStateFile(t, a, statePrevFile, good(t))
		}, fromCopy},
		{"bad installed version", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, []byte(`{"components": {"notification-client": {"installed": "../../etc", "state": "up-to-date"}}}`))
		}, rebuilt},
		{"bad component name", func(t *testing.T, a *Agent) {
			tree(t, a)
			writeStateFile(t, a, stateFile, []byte(`{"components": {"../x": {"state": "up-to-date"}}}`))
			writeStateFile(t, a, statePrevFile, good(t))
		}, fromCopy},
		{"unknown component state", func(t *testing.T, a *Agent) {
			tree(t, a)
			st := goodState(testComp)
			st.Components[testComp].State = "exploded"
			writeStateFile(t, a, stateFile, stateJSON(t, st))
			writeStateFile(t, a, statePrevFile, good(t))
		}, fromCopy},
		{"staged release without metadata", func(t *testing.T, a *Agent) {
			tree(t, a)
			st := goodState(testComp)
			st.Components[testComp].Staged = testRelease(testComp, "1.2.0")
			st.Components[testComp].Staged.Meta = nil
			writeStateFile(t, a, stateFile, stateJSON(t, st))
			writeStateFile(t, a, statePrevFile, good(t))
		}, fromCopy},
		{"installed release of another version", func(t *testing.T, a *Agent) {
			tree(t, a)
			st := goodState(testComp)
			st.Components[testComp].InstalledRelease = testRelease(testComp, "1.2.0")
			writeStateFile(t, a, stateFile, stateJSON(t, st))
		}, rebuilt},
		{"release metadata of another component", func(t *testing.T, a *Agent) {
			tree(t, a)
			st := goodState(testComp)
			st.Components[testComp].InstalledRelease.Meta.Component = "remote-support"
			writeStateFile(t, a, stateFile, stateJSON(t, st))
		}, rebuilt},
		{"bad sha256", func(t *testing.T, a *Agent) {
			tree(t, a)
			st := goodState(testComp)
			st.Components[testComp].PreviousRelease.SHA256 = "zz"
			writeStateFile(t, a, stateFile, stateJSON(t, st))
		}, rebuilt},
		{"copy older than the install tree", func(t *testing.T, a *Agent) {
			installed(t, a, testComp, "1.2.0", "1.1.0")
			writeStateFile(t, a, stateFile, truncated(t))
			writeStateFile(t, a, statePrevFile, good(t))
		}, want{installed: "1.2.0", previous: "1.1.0", pinned: "1.1.0", recovered: true}},
		{"current names no version directory", func(t *testing.T, a *Agent) {
			compDir := filepath.Join(a.cfg.InstallRoot, testComp)
			os.MkdirAll(filepath.Join(compDir, "1.0.0"), 0o755)
			if err := switchCurrent(compDir, "../../../etc"); err != nil {
				t.Fatal(err)
			}
			writeStateFile(t, a, stateFile, truncated(t))
		}, want{recovered: true}},
		{"state.json is a directory", func(t *testing.T, a *Agent) {
			tree(t, a)
			os.Mkdir(filepath.Join(a.dir, stateFile), 0o700)
			writeStateFile(t, a, statePrevFile, good(t))
		}, want{installed: "1.1.0", previous: "1.0.0", pinned: "1.1.0", releaseKnown: true, recovered: true, unwritable: true}},
		{"pin and rollback from the audit log", func(t *testing.T, a *Agent) {
			tree(t, a)
			a.audit(AuditEvent{Event: EventPinned, Component: testComp, Version: "1.0.0"})
			a.audit(AuditEvent{Event: EventUnpinned, Component: testComp})
			a.audit(AuditEvent{Event: EventPinned, Component: testComp, Version: "1.1.0"})
			writeStateFile(t, a, stateFile, []byte("{"))
		}, want{installed: "1.1.0", previous: "1.0.0", pinned: "1.1.0", recovered: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := stateAgent(t)
			tt.setup(t, a)
			st, err := a.loadState()
			if err != nil {
				t.Fatalf("loadState: %v", err)
			}
			c := st.Components[testComp]
			if c.Installed != tt.want.installed || c.Previous != tt.want.previous || c.Pinned != tt.want.pinned {
				t.Errorf("installed %q previous %q pinned %q, want %q %q %q", c.Installed, c.Previous, c.Pinned, tt.want.installed, tt.want.previous, tt.want.pinned)
			}
			if (c.InstalledRelease != nil) != tt.want.releaseKnown {
				t.Errorf("installed release %+v, want known=%v", c.InstalledRelease, tt.want.releaseKnown)
			}
			if c.ReleaseUnknown() != (tt.want.installed != "" && !tt.want.releaseKnown) {
				t.Errorf("ReleaseUnknown() = %v", c.ReleaseUnknown())
			}
			if c.Staged != nil || (tt.want.recovered && c.Available != nil) {
				t.Errorf("recovered state has staged %v, available %v", c.Staged, c.Available)
			}
			if got := hasNote(notes(t, a), NoteStateRecovered); got != tt.want.recovered {
				t.Errorf("state-recovered notification: %v, want %v (%+v)", got, tt.want.recovered, notes(t, a))
			}
			if got := auditHas(t, a, EventStateRecovered); got != tt.want.recovered {
				t.Errorf("state-recovered audit entry: %v, want %v", got, tt.want.recovered)
			}
			if _, err := a.VerifyLogs(); err != nil {
				t.Errorf("audit log after recovery: %v", err)
			}
			if !tt.want.recovered || tt.want.unwritable {
				return
			}
			// The recovered state was written back, and its copy with it:
			// the next load is an ordinary one.
			for _, name := range []string{stateFile, statePrevFile} {
				data, err := os.ReadFile(filepath.Join(a.dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := a.parseState(data); err != nil {
					t.Errorf("%s after recovery: %v", name, err)
				}
			}
			again := &Agent{dir: a.dir, cfg: a.cfg, log: a.log}
			st2, err := again.loadState()
			if err != nil || st2.Components[testComp].Installed != tt.want.installed || again.stateBytes == nil {
				t.Errorf("second load: %v %+v", err, st2.Components[testComp])
			}
		})
	}
}

func TestStatusAnswersWithDamagedState(t *testing.T) {
	a := stateAgent(t)
	installed(t, a, testComp, "1.0.0")
	writeStateFile(t, a, stateFile, []byte("{\"components\": {\"notif"))
	r, err := a.Status()
	if err != nil {
		t.Fatal(err)
	}
	c := r.Components[0]
	if c.Installed == nil || *c.Installed != "1.0.0" || !c.ReleaseUnknown || len(c.Features) != 0 {
		t.Fatalf("status after a damaged state.json: %+v", c)
	}
}

func TestSaveStateKeepsLastGoodCopy(t *testing.T) {
	a := stateAgent(t)
	installed(t, a, testComp, "1.1.0", "1.0.0")
	st := goodState(testComp)
	for i, pin := range []string{"1.1.0", "1.0.0", ""} {
		st.Components[testComp].Pinned = pin
		if err := a.saveState(st); err != nil {
			t.Fatal(err)
		}
		cur, _ := os.ReadFile(filepath.Join(a.dir, stateFile))
		prev, _ := os.ReadFile(filepath.Join(a.dir, statePrevFile))
		if !bytes.Equal(cur, prev) || len(cur) == 0 {
			t.Fatalf("save %d: state.json and its copy differ", i)
		}
		if fi, err := os.Stat(filepath.Join(a.dir, statePrevFile)); err != nil || (runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600) {
			t.Fatalf("copy: %v %v", fi, err)
		}
	}
	// The last save is what a truncation falls back to.
	os.Truncate(filepath.Join(a.dir, stateFile), 10)
	b := &Agent{dir: a.dir, cfg: a.cfg, log: a.log}
	got, err := b.loadState()
	if err != nil || got.Components[testComp].Pinned != "" || got.Components[testComp].InstalledRelease == nil {
		t.Fatalf("after truncation: %v %+v", err, got.Components[testComp])
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(a.dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestStateFileSymlinkIsNotFollowed(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	a := stateAgent(t)
	installed(t, a, testComp, "1.0.0")
	outside := filepath.Join(t.TempDir(), "victim.json")
	victim := stateJSON(t, goodState(testComp))
	os.WriteFile(outside, victim, 0o600)
	if err := os.Symlink(outside, filepath.Join(a.dir, stateFile)); err != nil {
		t.Fatal(err)
	}
	st, err := a.loadState()
	if err != nil {
		t.Fatal(err)
	}
	// Not read through the link (it would say 1.1.0 and a pin)...
	if c := st.Components[testComp]; c.Installed != "1.0.0" || c.Pinned != "" {
		t.Fatalf("state read through a symlink out of the state directory: %+v", c)
	}
	// ...not written through it, and the link is replaced by a file.
	if b, _ := os.ReadFile(outside); !bytes.Equal(b, victim) {
		t.Fatal("the file outside the state directory was changed")
	}
	if fi, err := os.Lstat(filepath.Join(a.dir, stateFile)); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("state.json after recovery: %v %v", fi, err)
	}
	if list := notes(t, a); !hasNote(list, NoteStateRecovered) || !strings.Contains(list[0].Message, "symbolic link") {
		t.Fatalf("notification does not name the link: %+v", list)
	}
}

func TestStateFileFIFOIsNotOpened(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs")
	}
	a := stateAgent(t)
	installed(t, a, testComp, "1.0.0")
	if out, err := exec.Command("mkfifo", filepath.Join(a.dir, stateFile)).CombinedOutput(); err != nil {
		t.Skipf("mkfifo: %v %s", err, out)
	}
	st, err := a.loadState() // would block forever if it opened the FIFO
	if err != nil || st.Components[testComp].Installed != "1.0.0" {
		t.Fatalf("%v %+v", err, st)
	}
}

func TestChoosePrevious(t *testing.T) {
	tests := []struct {
		name, installed string
		versions        []string
		skip, want      string
	}{
		{"none", "1.0.0", []string{"1.0.0"}, "", ""},
		{"older", "1.1.0", []string{"1.0.0", "1.1.0"}, "", "1.0.0"},
		{"newest older", "1.2.0", []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0"}, "", "1.1.0"},
		{"after a rollback", "1.0.0", []string{"1.0.0", "1.1.0"}, "", "1.1.0"},
		{"skip the undone install", "1.0.0", []string{"1.0.0", "1.1.0"}, "1.1.0", ""},
		{"semver order", "1.10.0", []string{"1.9.0", "1.10.0", "1.2.0"}, "", "1.9.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := choosePrevious(tt.installed, tt.versions, tt.skip); got != tt.want {
				t.Errorf("choosePrevious(%s, %v, %q) = %q, want %q", tt.installed, tt.versions, tt.skip, got, tt.want)
			}
		})
	}
}

// crashApply leaves what an apply of to over from leaves when it is killed
// after switching current: the journal, the new version and current on it.
func crashApply(t *testing.T, a *Agent, from, to string) {
	t.Helper()
	compDir := filepath.Join(a.cfg.InstallRoot, testComp)
	os.MkdirAll(filepath.Join(compDir, to), 0o755)
	if err := a.writeJournal(intent{Component: testComp, From: from, To: to, FromFeatures: []string{}}); err != nil {
		t.Fatal(err)
	}
	if err := switchCurrent(compDir, to); err != nil {
		t.Fatal(err)
	}
}

func stateAt(comp, installed, previous string) *State {
	c := &ComponentState{Installed: installed, Previous: previous, State: StateUpToDate}
	if installed != "" {
		c.InstalledRelease = testRelease(comp, installed)
	}
	if previous != "" {
		c.PreviousRelease = testRelease(comp, previous)
	}
	return &State{Components: map[string]*ComponentState{comp: c}}
}

// TestRecoverJournalWithDamagedState: an interrupted apply and a damaged
// state.json, in both orders. The journal is settled before anything is
// taken from the install tree.
func TestRecoverJournalWithDamagedState(t *testing.T) {
	tests := []struct {
		name string
		// run damages the state and interrupts an apply, in some order.
		run                 func(t *testing.T, a *Agent)
		current, installed  string
		previous            string
		recoveredNoteWanted bool
	}{
		{"crash after commit, then state.json truncated, copy committed", func(t *testing.T, a *Agent) {
			installed(t, a, testComp, "1.0.0")
			crashApply(t, a, "1.0.0", "1.1.0")
			writeStateFile(t, a, statePrevFile, stateJSON(t, stateAt(testComp, "1.1.0", "1.0.0")))
			writeStateFile(t, a, stateFile, []byte(`{"compo`))
		}, "1.1.0", "1.1.0", "1.0.0", true},
		{"crash before commit, then state.json truncated, copy not committed", func(t *testing.T, a *Agent) {
			installed(t, a, testComp, "1.0.0")
			crashApply(t, a, "1.0.0", "1.1.0")
			writeStateFile(t, a, statePrevFile, stateJSON(t, stateAt(testComp, "1.0.0", "")))
			writeStateFile(t, a, stateFile, []byte(`{"compo`))
		}, "1.0.0", "1.0.0", "", true},
		{"crash, then state.json and its copy lost", func(t *testing.T, a *Agent) {
			installed(t, a, testComp, "1.0.0")
			crashApply(t, a, "1.0.0", "1.1.0")
			writeStateFile(t, a, stateFile, []byte(`garbage`))
		}, "1.0.0", "1.0.0", "", true},
		{"crash during a first install, then state lost", func(t *testing.T, a *Agent) {
			crashApply(t, a, "", "1.0.0")
			writeStateFile(t, a, stateFile, []byte(`[]`))
			writeStateFile(t, a, statePrevFile, []byte(`[]`))
		}, "", "", "", true},
		{"crash with an older version kept, then state lost", func(t *testing.T, a *Agent) {
			installed(t, a, testComp, "1.1.0", "1.0.0")
			crashApply(t, a, "1.1.0", "1.2.0")
			writeStateFile(t, a, stateFile, []byte(`{`))
		}, "1.1.0", "1.1.0", "1.0.0", true},
		{"state.json damaged and recovered, then crash before commit", func(t *testing.T, a *Agent) {
			installed(t, a, testComp, "1.0.0")
			writeStateFile(t, a, stateFile, []byte(`{`))
			if _, err := a.loadState(); err != nil {
				t.Fatal(err)
			}
			crashApply(t, a, "1.0.0", "1.1.0")
		}, "1.0.0", "1.0.0", "", true},
		{"state.json damaged and recovered, then crash after commit", func(t *testing.T, a *Agent) {
			installed(t, a, testComp, "1.0.0")
			writeStateFile(t, a, stateFile, []byte(`{`))
			st, err := a.loadState()
			if err != nil {
				t.Fatal(err)
			}
			crashApply(t, a, "1.0.0", "1.1.0")
			st.Components[testComp].markInstalled(testRelease(testComp, "1.1.0"))
			if err := a.saveState(st); err != nil {
				t.Fatal(err)
			}
		}, "1.1.0", "1.1.0", "1.0.0", true},
		{"crash, nothing damaged", func(t *testing.T, a *Agent) {
			installed(t, a, testComp, "1.0.0")
			writeStateFile(t, a, stateFile, stateJSON(t, stateAt(testComp, "1.0.0", "")))
			crashApply(t, a, "1.0.0", "1.1.0")
		}, "1.0.0", "1.0.0", "", false},
	}
	for _, tt := range tests {
		for _, via := range []string{"recover", "loadState"} {
			t.Run(tt.name+"/"+via, func(t *testing.T) {
				a := stateAgent(t)
				tt.run(t, a)
				if data, _ := os.ReadFile(a.statePath()); via == "loadState" {
					if _, err := a.parseState(data); err == nil {
						// Only Open settles a journal beside a good
						// state.json; loadState does it when it needs
						// the install tree.
						return
					}
				}
				a = &Agent{dir: a.dir, cfg: a.cfg, log: a.log} // a new process
				if via == "recover" {
					// What Open does.
					if err := a.recover(); err != nil {
						t.Fatal(err)
					}
				}
				// A command that loads the state without Open first (or
				// after it) gets the same answer.
				st, err := a.loadState()
				if err != nil {
					t.Fatal(err)
				}
				cur, _ := CurrentVersion(filepath.Join(a.cfg.InstallRoot, testComp))
				c := st.Components[testComp]
				if cur != tt.current || c.Installed != tt.installed || c.Previous != tt.previous {
					t.Fatalf("current %q, state installed %q previous %q; want %q, %q, %q", cur, c.Installed, c.Previous, tt.current, tt.installed, tt.previous)
				}
				if _, err := os.Lstat(a.journalPath()); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("journal left: %v", err)
				}
				if got := hasNote(notes(t, a), NoteStateRecovered); got != tt.recoveredNoteWanted {
					t.Errorf("state-recovered notification %v, want %v", got, tt.recoveredNoteWanted)
				}
				data, _ := os.ReadFile(a.statePath())
				if tt.recoveredNoteWanted {
					if _, err := a.parseState(data); err != nil {
						t.Fatalf("state.json after recovery: %v", err)
					}
				}
			})
		}
	}
}

func TestJournalDamagedStillRefused(t *testing.T) {
	a := stateAgent(t)
	writeStateFile(t, a, journalFile, []byte(`{"compon`))
	if err := a.recover(); err == nil || !strings.Contains(err.Error(), "journal.json is damaged") {
		t.Fatalf("recover with a damaged journal: %v", err)
	}
}

// outsideStaging replaces <state>/staging with a symlink to a directory
// outside the state directory holding a victim file where the agent would
// stage, and returns a fingerprint function of that directory.
func outsideStaging(t *testing.T, a *Agent) (outside string, fingerprint func() string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	outside = t.TempDir()
	victimDir := filepath.Join(outside, testComp, "1.1.0")
	os.MkdirAll(victimDir, 0o700)
	os.WriteFile(filepath.Join(outside, testComp, "victim.txt"), []byte("do not touch"), 0o600)
	os.WriteFile(filepath.Join(victimDir, "notification-client-1.1.0.tar.gz"), []byte("not staged by the agent"), 0o600)
	if err := os.RemoveAll(filepath.Join(a.dir, stagingRoot)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(a.dir, stagingRoot)); err != nil {
		t.Fatal(err)
	}
	return outside, func() string {
		var b strings.Builder
		filepath.Walk(outside, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			data, _ := os.ReadFile(p)
			b.WriteString(p + " " + fi.Mode().String() + " " + string(data) + "\n")
			return nil
		})
		return b.String()
	}
}

func TestStagingSymlinkIsNotFollowed(t *testing.T) {
	a := stateAgent(t)
	outside, fingerprint := outsideStaging(t, a)
	before := fingerprint()
	staged := testRelease(testComp, "1.1.0")
	staged.File = filepath.Join(a.dir, stagingRoot, testComp, "1.1.0", "notification-client-1.1.0.tar.gz")

	c := &ComponentState{Staged: staged}
	a.dropStaged(testComp, c)
	if c.Staged != nil {
		t.Error("dropStaged kept the staged release")
	}
	_, err := a.verifyStaged(staged.File, nil, staged)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), outside) {
		t.Errorf("verifyStaged through a symlinked staging: %v", err)
	}
	if _, err := a.readStaged(staged.File+repo.SignatureSuffix, 1<<20); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("readStaged through a symlinked staging: %v", err)
	}
	if f, err := a.openStaged(staged.File); err == nil {
		f.Close()
		t.Error("openStaged followed a symlinked staging")
	}
	if after := fingerprint(); after != before {
		t.Fatalf("the directory outside the state directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestStagedFileOutsideStaging(t *testing.T) {
	a := stateAgent(t)
	elsewhere := filepath.Join(t.TempDir(), "x.tar.gz")
	os.WriteFile(elsewhere, []byte("0123456789"), 0o600)
	for _, file := range []string{
		elsewhere,
		filepath.Join(a.dir, stateFile),
		filepath.Join(a.dir, stagingRoot),
		filepath.Join(a.dir, stagingRoot, "..", "config.json"),
	} {
		rel := testRelease(testComp, "1.1.0")
		rel.File = file
		if _, err := a.verifyStaged(file, nil, rel); !errors.Is(err, ErrVerification) || !errors.Is(err, errNotStaged) {
			t.Errorf("verifyStaged(%s): %v", file, err)
		}
	}
}

func TestWritesDoNotFollowLinks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	a := stateAgent(t)
	outside := t.TempDir()
	for _, name := range []string{journalFile, stateFile, statePrevFile} {
		victim := filepath.Join(outside, name)
		os.WriteFile(victim, []byte("victim"), 0o600)
		if err := os.Symlink(victim, filepath.Join(a.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.writeJournal(intent{Component: testComp, From: "1.0.0", To: "1.1.0"}); err != nil {
		t.Fatal(err)
	}
	if err := a.saveState(goodState(testComp)); err != nil {
		t.Fatal(err)
	}
	if err := a.clearJournal(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{journalFile, stateFile, statePrevFile} {
		if b, _ := os.ReadFile(filepath.Join(outside, name)); string(b) != "victim" {
			t.Errorf("%s was written through a symlink", name)
		}
	}
	var st State
	if b, err := os.ReadFile(a.statePath()); err != nil || json.Unmarshal(b, &st) != nil || st.Components[testComp].Installed != "1.1.0" {
		t.Fatalf("state.json: %v", err)
	}
}

// FuzzParseState: no bytes in state.json make the agent panic, and a copy
// it accepts survives its own save and load.
func FuzzParseState(f *testing.F) {
	good, _ := marshalState(goodState(testComp))
	for _, seed := range [][]byte{good, good[:10], nil, []byte(`[]`), []byte(`{"components": 5}`), []byte(`{"components": {}}`),
		[]byte(`{"components": {"a": null}}`), []byte(`{"components": {"a": {"installed_release": {"version": "1.0.0"}}}}`)} {
		f.Add(seed)
	}
	a := &Agent{cfg: &Config{Components: []string{testComp}}, log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := a.parseState(data)
		if err != nil {
			return
		}
		a.fillComponents(st)
		again, err := marshalState(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.parseState(again); err != nil {
			t.Fatalf("an accepted state does not survive a save: %v\n%s", err, again)
		}
	})
}

// TestRecoverJournalOfSeveralComponents: an apply of three components
// killed after switching all three, with state.json committed or not.
// Every component ends on its old version or on its new one, as state.json
// says, and the journal is gone.
func TestRecoverJournalOfSeveralComponents(t *testing.T) {
	comps := []string{"comp-a", "comp-b", "comp-c"}
	for _, committed := range []bool{false, true} {
		t.Run(fmt.Sprintf("committed=%v", committed), func(t *testing.T) {
			a := stateAgent(t, comps...)
			st := &State{Components: map[string]*ComponentState{}}
			var js []intent
			for _, comp := range comps {
				installed(t, a, comp, "1.0.0")
				st.Components[comp] = stateAt(comp, "1.0.0", "").Components[comp]
				js = append(js, intent{Component: comp, From: "1.0.0", To: "1.1.0", FromFeatures: []string{}})
			}
			if err := a.writeJournalAll(js); err != nil {
				t.Fatal(err)
			}
			if data, _ := os.ReadFile(a.journalPath()); !strings.Contains(string(data), `"intents"`) {
				t.Fatalf("journal of three: %s", data)
			}
			for _, comp := range comps {
				compDir := filepath.Join(a.cfg.InstallRoot, comp)
				os.MkdirAll(filepath.Join(compDir, "1.1.0"), 0o755)
				if err := switchCurrent(compDir, "1.1.0"); err != nil {
					t.Fatal(err)
				}
				if committed {
					st.Components[comp].markInstalled(testRelease(comp, "1.1.0"))
				}
			}
			writeStateFile(t, a, stateFile, stateJSON(t, st))
			a = &Agent{dir: a.dir, cfg: a.cfg, log: a.log} // a new process
			if err := a.recover(); err != nil {
				t.Fatal(err)
			}
			want := "1.0.0"
			if committed {
				want = "1.1.0"
			}
			for _, comp := range comps {
				if cur, _ := CurrentVersion(filepath.Join(a.cfg.InstallRoot, comp)); cur != want {
					t.Errorf("%s: current %q, want %q", comp, cur, want)
				}
			}
			if _, err := os.Lstat(a.journalPath()); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("journal left: %v", err)
			}
		})
	}
}

func TestParseJournal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  string
	}{
		{`{"component":"a","from":"1.0.0","to":"1.1.0","from_features":[]}`, 1, ""},
		{`{"intents":[{"component":"a","to":"1.1.0"},{"component":"b","to":"2.0.0"}]}`, 2, ""},
		{`{"intents":[{"component":"a","to":"1.1.0"},{"component":"a","to":"2.0.0"}]}`, 0, "named twice"},
		{`{"intents":[{"component":"","to":"1.1.0"}]}`, 0, "names no component"},
		{`{"to":"1.1.0"}`, 0, "names no component"},
		{`{"intents":`, 0, "unexpected end"},
	} {
		js, err := parseJournal([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: want error %q, got %v", tc.in, tc.err, err)
			}
			continue
		}
		if err != nil || len(js) != tc.want {
			t.Errorf("%s: %d intents, %v; want %d", tc.in, len(js), err, tc.want)
		}
	}
}
