package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
)

// intent is the apply journal (<state>/journal.json): written, fsynced,
// before `current` is touched and removed once state.json records the
// outcome. state.json is the commit point: on the next start, a journal
// whose target version state.json already records is finished; any other
// is undone, so a crash at any instant leaves the component on its old
// version or on its new one.
type intent struct {
	Component    string   `json:"component"`
	From         string   `json:"from"`
	To           string   `json:"to"`
	FromFeatures []string `json:"from_features"`
}

func (a *Agent) journalPath() string { return filepath.Join(a.dir, "journal.json") }

func (a *Agent) writeJournal(j intent) error {
	return writeJSON(a.journalPath(), j, 0o600)
}

func (a *Agent) clearJournal() error {
	if err := os.Remove(a.journalPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(a.dir)
}

// recover finishes or undoes an apply that a crash interrupted. It runs
// when the agent opens its state directory, under the lock.
func (a *Agent) recover() error {
	data, err := readFileLimited(a.journalPath(), 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var j intent
	if err := json.Unmarshal(data, &j); err != nil || j.Component == "" || j.To == "" {
		return fmt.Errorf("%s is damaged (%v); check %s by hand", a.journalPath(), err, a.cfg.InstallRoot)
	}
	st, err := a.loadState()
	if err != nil {
		return err
	}
	c := st.Components[j.Component]
	if c == nil {
		return a.clearJournal()
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
	return a.clearJournal()
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
