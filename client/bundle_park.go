package client

// Parking (bundle_import.go): an import that fails leaves staging/ as it
// was. The first time an import would remove a component's staging
// directory (an earlier bundle's release, an online stage's, a partial
// download) it moves it to staging/.import/parked/<component> instead; a
// failed import puts it back; an import stopped by a crash has it put
// back when the agent next opens its state directory.

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// parkedDir, below the import's scratch directory, holds the staging
// directories an import has moved aside.
const parkedDir = "parked"

var parkedRoot = filepath.Join(stagingRoot, importScratch, parkedDir)

// park moves staging/<component> aside the first time the import would
// remove it, and removes it (the import's own files) after that. A
// component counts as parked only once its directory is out of the way:
// a park that failed leaves it in place, and the import fails.
func (src *bundleSource) park(root *os.Root, component string) error {
	src.mu.Lock()
	defer src.mu.Unlock()
	name := filepath.Join(stagingRoot, component)
	if src.parked[component] {
		return root.RemoveAll(name)
	}
	if _, err := root.Lstat(name); errors.Is(err, fs.ErrNotExist) {
		src.parked[component] = true // nothing to keep
		return nil
	}
	if err := root.MkdirAll(parkedRoot, 0o700); err != nil {
		return err
	}
	if err := root.Rename(name, filepath.Join(parkedRoot, component)); err != nil {
		return fmt.Errorf("moving aside %s's staged files: %w", component, err)
	}
	src.parked[component] = true
	return nil
}

// unpark settles, after a failed import, every component it parked, by
// what state.json on disk names (settleParked); false if one could not
// be put back (its parked copy is then kept for the next open).
func (src *bundleSource) unpark(a *Agent) bool {
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.parked) == 0 {
		return true
	}
	root, err := a.openRoot()
	if err != nil {
		a.log.Error("putting back staged files after a refused import", "err", err)
		return false
	}
	defer root.Close()
	st, err := a.loadState()
	if err != nil {
		a.log.Error("putting back staged files after a refused import", "err", err)
		return false
	}
	ok := true
	for _, component := range slices.Sorted(maps.Keys(src.parked)) {
		if err := settleParked(root, st, component, true); err != nil {
			a.log.Error("putting back staged files after a refused import", "component", component, "err", err)
			ok = false
		}
	}
	return ok
}

// removeScratch removes the import's scratch directory, all but the
// parked copies if keepParked.
func (src *bundleSource) removeScratch(keepParked bool) {
	if !keepParked {
		os.RemoveAll(src.scratch)
		return
	}
	ents, _ := os.ReadDir(src.scratch)
	for _, e := range ents {
		if e.Name() != parkedDir {
			os.RemoveAll(filepath.Join(src.scratch, e.Name()))
		}
	}
}

// settleParked decides for one component what its staging directory
// holds after an import, by what state.json (st) names:
//   - the staged release state.json names is in staging/: kept, and the
//     parked copy (stale) dropped;
//   - it is in the parked copy: the parked copy goes back;
//   - neither: after a failed import (failed) the parked copy, if any,
//     goes back (a partial download, kept to resume) and otherwise what
//     the import left is removed; after a crash the parked copy is
//     dropped (nothing names it).
func settleParked(root *os.Root, st *State, component string, failed bool) error {
	name := filepath.Join(stagingRoot, component)
	parked := filepath.Join(parkedRoot, component)
	var staged *Release
	if c := st.Components[component]; c != nil {
		staged = c.Staged
	}
	_, perr := root.Lstat(parked)
	hasParked := perr == nil
	switch {
	case staged != nil && holdsRelease(root, name, staged):
		if hasParked {
			return root.RemoveAll(parked)
		}
		return nil
	case hasParked && (failed || staged != nil && holdsRelease(root, parked, staged)):
		if err := root.RemoveAll(name); err != nil {
			return err
		}
		return root.Rename(parked, name)
	case hasParked:
		return root.RemoveAll(parked)
	case failed:
		return root.RemoveAll(name)
	}
	return nil
}

// holdsRelease says whether dir (a component's staging directory, or its
// parked copy) holds rel: its version's directory with the marker of
// rel's sha256.
func holdsRelease(root *os.Root, dir string, rel *Release) bool {
	if !filepath.IsLocal(rel.Version) || strings.ContainsAny(rel.Version, `/\`) {
		return false
	}
	b, err := readFileRoot(root, filepath.Join(dir, rel.Version, "release.sha256"), 128)
	return err == nil && strings.TrimSpace(string(b)) == rel.SHA256
}

// recoverParked, when the agent opens its state directory and before an
// import, settles what an import that was stopped (killed, power lost)
// had parked (settleParked): the release state.json names goes back to
// staging/, anything else parked is dropped.
func (a *Agent) recoverParked() error {
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := root.Open(parkedRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return a.confined(root, parkedRoot, err)
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil || len(ents) == 0 {
		return err
	}
	st, err := a.loadState()
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := settleParked(root, st, e.Name(), false); err != nil {
			return fmt.Errorf("settling %s's staged files, parked by an import that was stopped: %w", e.Name(), err)
		}
		a.log.Info("settled staged files parked by an import that was stopped", "component", e.Name())
	}
	return nil
}
