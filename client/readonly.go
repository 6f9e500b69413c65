package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/signer"
)

// View is a read-only look at a state directory, for the commands that
// only report (status, notifications, consent list, audit verify and
// export). It takes no lock, so it never waits for an agent that is
// downloading or installing, and it writes nothing: no recovery of an
// interrupted apply, no reconcile of features.json, no repair of a damaged
// state.json, no audit entry, no notification, not even a lock file.
//
// What it reads is a consistent snapshot: every file it reads is replaced
// atomically by the agent (a reader sees the old or the new one), and the
// hash-chained logs, which are appended to, are read again if they moved
// while being read (verifyLog). What the agent holding the lock is doing
// comes from activity.json (activity.go), believed only while the lock is
// held.
type View struct {
	a        *Agent // no lock, no HTTP client: only the reading methods are used
	trustErr error  // the trust directory could not be loaded
}

// OpenReadOnly opens an initialized state directory for reading: the
// configuration and the same permission checks as Open, and nothing else.
func OpenReadOnly(stateDir string, log *slog.Logger) (*View, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, cfg, err := openConfig(stateDir)
	if err != nil {
		return nil, err
	}
	v := &View{a: &Agent{dir: abs, cfg: cfg, log: log}}
	// The trust directory, to check installed releases' gate manifests as
	// reconcile does (drift); status still answers without it.
	v.a.trust, v.trustErr = signer.LoadTrust(cfg.TrustDir)
	return v, nil
}

// Config returns the agent's configuration.
func (v *View) Config() Config { return *v.a.cfg }

// Activity says whether an agent holds the state directory and, if it has
// said, what it is doing.
func (v *View) Activity() (*ActivityStatus, error) {
	busy, err := probeLock(filepath.Join(v.a.dir, "agent.lock"))
	if err != nil {
		return nil, err
	}
	svc, err := probeLock(filepath.Join(v.a.dir, "service.lock"))
	if err != nil {
		return nil, err
	}
	s := &ActivityStatus{Busy: busy, Service: svc}
	if !busy {
		return s, nil // an activity.json left now is stale (a crash)
	}
	root, err := v.a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	data, err := readFileRoot(root, activityFile, maxActivitySize)
	if err != nil {
		return s, nil // not written yet (or by an agent from before it)
	}
	var act Activity
	if json.Unmarshal(data, &act) == nil && act.PID > 0 {
		s.Activity = &act
	}
	return s, nil
}

// Status is Agent.Status without the lock: the state as state.json holds it
// now, what the agent holding the lock is doing (Activity), and Warnings
// for anything the next agent to open the directory will repair.
func (v *View) Status() (*StatusReport, error) {
	act, err := v.Activity()
	if err != nil {
		return nil, err
	}
	var r *StatusReport
	err = v.stable(func() error {
		st, warnings, err := v.a.peekState(act.Busy)
		if err != nil {
			return err
		}
		r = v.a.statusOf(st)
		switch {
		case act.Busy:
			// An apply may be between writing features.json and
			// state.json: what the running agent leaves is judged by the
			// next one.
		case v.trustErr != nil:
			warnings = append(warnings, fmt.Sprintf("config trust_dir: %v", v.trustErr))
		default:
			warnings = append(warnings, v.a.drift(st)...)
		}
		r.Warnings = warnings
		v.a.assess(r, st, time.Now())
		r.Fleet = v.a.fleetStatus()
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Activity = act
	return r, nil
}

// Notifications returns the active notifications, oldest first.
func (v *View) Notifications() ([]Notification, error) { return v.a.Notifications() }

// ConsentList returns this device's standing decision per component and
// feature, verifying the consent log first.
func (v *View) ConsentList() (list []ConsentStatus, err error) {
	err = v.stable(func() error {
		list, err = v.a.ConsentList()
		return err
	})
	return list, err
}

// VerifyLogs checks both hash-chained logs; the error names the first bad
// entry.
func (v *View) VerifyLogs() (rep *AuditReport, err error) {
	err = v.stable(func() error {
		rep, err = v.a.VerifyLogs()
		return err
	})
	return rep, err
}

// ExportLogs returns the verified entries of both logs.
func (v *View) ExportLogs() (audit, consent []LogEntry, err error) {
	err = v.stable(func() error {
		audit, consent, err = v.a.ExportLogs()
		return err
	})
	return audit, consent, err
}

// stableTries bounds how often stable reads the logs again.
const stableTries = 5

// stable runs read, which reads the hash-chained logs, and runs it again
// if an agent appended to one of them meanwhile: a log and its head are two
// files, and an append that completes between reading the one and the
// other looks, to a reader without the lock, like an entry appended
// outside the agent (ErrLogDamaged), or like a consent log that does not
// verify. Damage that is there while the logs stay still is real, and
// reported.
func (v *View) stable(read func() error) error {
	var err error
	for range stableTries {
		before := v.heads()
		err = read()
		if bytes.Equal(before, v.heads()) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// heads is what changes when a log is appended to: both logs' sizes and
// modification times and their head files' content.
func (v *View) heads() []byte {
	var b bytes.Buffer
	root, err := v.a.openRoot()
	if err != nil {
		return nil
	}
	defer root.Close()
	for _, name := range []string{"audit.jsonl", "consent.jsonl"} {
		for _, f := range []string{name + ".head", name} {
			if fi, err := root.Lstat(f); err == nil {
				fmt.Fprintf(&b, "%s %d %d\n", f, fi.Size(), fi.ModTime().UnixNano())
			}
		}
		if data, err := readFileRoot(root, name+".head", maxLogHead); err == nil {
			b.Write(data)
		}
	}
	return b.Bytes()
}

// peekState reads the agent's state without writing anything: what
// loadState would use, as a snapshot. Where loadState would repair
// something (settle an interrupted apply, restore state.json from its last
// good copy, rebuild it from the install tree) it shows what the repair
// starts from and says so in warnings; the next agent that opens the
// state directory with its lock does the repair. busy says whether an
// agent holds the lock now (an apply in progress is then not interrupted).
func (a *Agent) peekState(busy bool) (*State, []string, error) {
	root, err := a.openRoot()
	if err != nil {
		return nil, nil, err
	}
	defer root.Close()
	var warnings []string
	if a.journalPending(root) && !busy {
		warnings = append(warnings, "an install was interrupted; the next bcagent command finishes or undoes it, and until then what is shown may not be what runs")
	}
	r := a.readState(root)
	st := r.st
	switch r.from {
	case stateFile:
		a.fillComponents(st)
	case statePrevFile:
		a.fillComponents(st)
		a.reconcileTree(st) // in memory only
		warnings = append(warnings, fmt.Sprintf("the agent's state is damaged (%s); shown from %s, its last good copy; the next bcagent command restores it", joinDamage(r.damage), statePrevFile))
	default:
		var notes []string
		st, notes = a.rebuildState(nil)
		a.fillComponents(st)
		if len(notes) > 0 || !fresh(r.damage) {
			warnings = append(warnings, fmt.Sprintf("the agent's state is lost (%s); shown as rebuilt from the install tree and the audit log; the next bcagent command writes it", joinDamage(r.damage)))
		}
	}
	return st, warnings, nil
}

func joinDamage(d []string) string { return strings.Join(d, "; ") }

// drift says, changing nothing, what reconcile would put back when the
// next agent opens the state directory: a current that names another
// version than the installed one, a features.json that lists other
// features than the verified consent log and signed metadata allow. Until
// then the component runs with what the files say, and status says so.
func (a *Agent) drift(st *State) []string {
	var out []string
	decs, decErr := a.decisions()
	for _, name := range a.cfg.Components {
		c := st.Components[name]
		if c == nil {
			continue
		}
		if name != SelfComponent && c.Installed != "" {
			if v, err := CurrentVersion(filepath.Join(a.cfg.InstallRoot, name)); err != nil || v != c.Installed {
				out = append(out, fmt.Sprintf("%s: %s does not point at the installed version %s; the next bcagent command puts it back", name, filepath.Join(a.cfg.InstallRoot, name, "current"), c.Installed))
			}
		}
		current, readErr := a.ActiveFeatures(name)
		if c.InstalledRelease == nil && readErr == nil && !a.featuresFileExists(name) {
			continue
		}
		want, why := a.allowedFeatures(st, name, c, decs, decErr)
		have := slices.Sorted(slices.Values(current))
		if readErr == nil && slices.Equal(have, want) && why == "" {
			continue
		}
		if readErr == nil && slices.Equal(have, want) {
			out = append(out, name+": "+why)
			continue
		}
		listed := "[" + strings.Join(have, ",") + "]"
		if readErr != nil {
			listed = fmt.Sprintf("unreadable (%v)", readErr)
		}
		msg := fmt.Sprintf("%s: %s lists %s, but the verified consent log and signed release metadata allow [%s]; the next bcagent command puts it back",
			name, a.featuresPath(name), listed, strings.Join(want, ","))
		if why != "" {
			msg += "; " + why
		}
		if decErr != nil {
			msg += "; the consent log does not verify, so no grant in it counts"
		}
		out = append(out, msg)
	}
	return out
}
