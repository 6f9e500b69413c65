package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/repo"
)

// Component states (DESIGN.md).
const (
	StateUpToDate              = "up-to-date"
	StateUpdateAvailable       = "update-available"
	StateStaged                = "staged"
	StateAwaitingAuthorization = "awaiting-authorization"
	StateFailed                = "failed"
)

// State is <state>/state.json. It holds only what the agent cannot derive:
// it is written only when it changes, so a failed step leaves it as it was.
type State struct {
	Repository RepositoryState            `json:"repository"`
	PHIClasses []string                   `json:"phi_device_classes,omitempty"`
	Components map[string]*ComponentState `json:"components"`
}

// RepositoryState is what the last successful refresh saw.
type RepositoryState struct {
	TimestampVersion int64     `json:"timestamp_version"`
	Expires          time.Time `json:"expires"`
}

// ComponentState is one component's installed, staged and available release.
type ComponentState struct {
	Installed string `json:"installed,omitempty"`
	Previous  string `json:"previous,omitempty"`
	// InstalledRelease and PreviousRelease keep the metadata (features)
	// of what is on disk.
	InstalledRelease *Release `json:"installed_release,omitempty"`
	PreviousRelease  *Release `json:"previous_release,omitempty"`
	Available        *Release `json:"available,omitempty"`
	Staged           *Release `json:"staged,omitempty"`
	// Failed is a release whose install was rolled back; it is not offered
	// again until a newer one appears.
	Failed *Release `json:"failed,omitempty"`
	// Pinned holds the component on a version (bcagent pin).
	Pinned    string `json:"pinned,omitempty"`
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
}

// Release is a release the agent has seen in verified metadata.
type Release struct {
	Path    string        `json:"path"`
	Version string        `json:"version"`
	SHA256  string        `json:"sha256"`
	Length  int64         `json:"length"`
	Meta    *repo.Release `json:"bc"`
	// File is the staged artifact, set once staged.
	File string `json:"file,omitempty"`
}

func (a *Agent) statePath() string { return filepath.Join(a.dir, "state.json") }

func (a *Agent) loadState() (*State, error) {
	st := &State{Components: map[string]*ComponentState{}}
	data, err := readFileLimited(a.statePath(), 16<<20)
	if errors.Is(err, fs.ErrNotExist) {
		a.stateBytes = nil
	} else if err != nil {
		return nil, err
	} else {
		if err := json.Unmarshal(data, st); err != nil {
			return nil, fmt.Errorf("%s: %w", a.statePath(), err)
		}
		a.stateBytes = data
	}
	if st.Components == nil {
		st.Components = map[string]*ComponentState{}
	}
	for _, c := range a.cfg.Components {
		if st.Components[c] == nil {
			st.Components[c] = &ComponentState{State: StateUpToDate}
		}
	}
	return st, nil
}

// saveState writes state.json atomically, and only if it changed.
func (a *Agent) saveState(st *State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if bytes.Equal(data, a.stateBytes) {
		return nil
	}
	if err := atomicfile.WriteFile(a.statePath(), data, 0o600); err != nil {
		return err
	}
	a.stateBytes = data
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func ensureDir(p string) error {
	if err := os.MkdirAll(p, 0o700); err != nil {
		return err
	}
	return nil
}
