package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
)

// intent is one component's part of the apply journal
// (<state>/journal.json): written, fsynced, before `current` is touched
// and removed once state.json records the outcome. state.json is the
// commit point: on the next start, an intent whose target version
// state.json already records is finished; any other is undone, so a crash
// at any instant leaves each component on its old version or on its new
// one. An apply of several components writes one journal for all of them
// ({"intents": [...]}; one component's is a bare intent, the format older
// agents wrote and read) and commits them in one state.json.
type intent struct {
	Component    string   `json:"component"`
	From         string   `json:"from"`
	To           string   `json:"to"`
	FromFeatures []string `json:"from_features"`
}

// journalFile is the apply journal, relative to the state directory.
const journalFile = "journal.json"

func (a *Agent) journalPath() string { return filepath.Join(a.dir, journalFile) }

// journalSet is journal.json when it holds several intents.
type journalSet struct {
	Intents []intent `json:"intents"`
}

func (a *Agent) writeJournal(j intent) error { return a.writeJournalAll([]intent{j}) }

func (a *Agent) writeJournalAll(js []intent) error {
	var v any = journalSet{Intents: js}
	if len(js) == 1 {
		v = js[0]
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	if err := writeFileRootSync(root, journalFile, append(data, '\n'), 0o600); err != nil {
		return a.confined(root, journalFile, err)
	}
	return nil
}

func (a *Agent) clearJournal() error {
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Remove(journalFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return a.confined(root, journalFile, err)
	}
	return syncDirRoot(root, ".")
}

// journalPending says whether an interrupted apply waits for recover.
func (a *Agent) journalPending(root *os.Root) bool {
	_, err := root.Lstat(journalFile)
	return err == nil
}

// parseJournal reads journal.json: one intent, or {"intents": [...]}.
func parseJournal(data []byte) ([]intent, error) {
	var set journalSet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, err
	}
	js := set.Intents
	if js == nil {
		var j intent
		if err := json.Unmarshal(data, &j); err != nil {
			return nil, err
		}
		js = []intent{j}
	}
	seen := map[string]bool{}
	for _, j := range js {
		if j.Component == "" || j.To == "" {
			return nil, errors.New("an intent names no component or version")
		}
		if seen[j.Component] {
			return nil, fmt.Errorf("%s is named twice", j.Component)
		}
		seen[j.Component] = true
	}
	return js, nil
}

// recover finishes or undoes an apply that a crash interrupted. It runs
// when the agent opens its state directory, under the lock, and before
// anything is taken from the install tree to recover a damaged state.json
// (state.go): until the journal is settled, `current` may name a version
// that was never committed.
//
// The state it decides with is state.json, or its last good copy (adopted
// with a warning). If neither is usable, whether the apply committed cannot
// be known: it is undone (the old version is the one known to run; a new
// one that did commit is offered again by the next check), and then the
// state is rebuilt from the settled install tree, never taking the undone
// version as the previous one.
func (a *Agent) recover() error {
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	data, err := readFileRoot(root, journalFile, 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return a.confined(root, journalFile, err)
	}
	js, err := parseJournal(data)
	if err != nil {
		return fmt.Errorf("%s is damaged (%v); check %s by hand", a.journalPath(), err, a.cfg.InstallRoot)
	}
	for _, j := range js {
		a.log.Warn("recovery: settling an install a crash interrupted", "component", j.Component, "from", j.From, "to", j.To)
	}
	r := a.readState(root)
	if r.st == nil {
		return a.recoverLost(root, js, r.damage)
	}
	st := r.st
	a.fillComponents(st)
	if r.from == statePrevFile {
		a.stateBytes = nil
		var what []string
		for _, j := range js {
			what = append(what, j.Component+" "+j.To)
		}
		a.adoptState(root, st, r.damage, []string{"restored from " + statePrevFile + ", the last good copy, to settle an interrupted install of " + strings.Join(what, ", ")})
	}
	for _, j := range js {
		c := st.Components[j.Component]
		if c == nil {
			continue
		}
		compDir := filepath.Join(a.cfg.InstallRoot, j.Component)
		if c.Installed == j.To {
			// Committed: make sure current and features.json say so.
			if err := switchCurrent(compDir, j.To); err != nil {
				return err
			}
			if c.InstalledRelease != nil {
				if err := a.writeFeatures(j.Component, a.decidedActive(st, j.Component, c.InstalledRelease)); err != nil {
					return err
				}
			}
			a.audit(AuditEvent{Event: EventInstalled, Component: j.Component, Version: j.To, Detail: "finished after an interruption"})
		} else {
			if err := a.undo(j); err != nil {
				return err
			}
			a.audit(AuditEvent{Event: EventRollback, Component: j.Component, Version: j.From, Detail: "install of " + j.To + " was interrupted and undone"})
		}
		cleanIncoming(compDir)
	}
	return a.clearJournal()
}

// recoverLost settles an interrupted apply when state.json and its last
// good copy are both lost: undo, then rebuild the state from the install
// tree (see recover).
func (a *Agent) recoverLost(root *os.Root, js []intent, damage []string) error {
	skip := map[string]string{}
	var what []string
	for _, j := range js {
		what = append(what, j.Component+" "+j.To)
		if !slices.Contains(a.cfg.Components, j.Component) {
			continue
		}
		if err := a.undo(j); err != nil {
			return err
		}
		cleanIncoming(filepath.Join(a.cfg.InstallRoot, j.Component))
		skip[j.Component] = j.To
		a.audit(AuditEvent{Event: EventRollback, Component: j.Component, Version: j.From,
			Detail: "install of " + j.To + " was interrupted and the state that would say whether it committed is lost: undone"})
	}
	if err := a.clearJournal(); err != nil {
		return err
	}
	st, notes := a.rebuildState(skip)
	a.fillComponents(st)
	a.stateBytes = nil
	notes = append([]string{"rebuilt from the install tree and the audit log after undoing the interrupted install of " + strings.Join(what, ", ")}, notes...)
	a.adoptState(root, st, damage, notes)
	return nil
}

// undo puts a component back where the journal says it was.
func (a *Agent) undo(j intent) error {
	compDir := filepath.Join(a.cfg.InstallRoot, j.Component)
	if err := a.writeFeatures(j.Component, j.FromFeatures); err != nil {
		return err
	}
	if j.From == "" {
		if err := os.Remove(filepath.Join(compDir, "current")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return atomicfile.SyncDir(compDir)
	}
	return switchCurrent(compDir, j.From)
}

func cleanIncoming(compDir string) {
	entries, _ := os.ReadDir(compDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".incoming-") || e.Name() == ".current.tmp" {
			os.RemoveAll(filepath.Join(compDir, e.Name()))
		}
	}
}
