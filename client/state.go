package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/beckmanconnect/bcupdate/repo"
)

// StateName is a component's state (DESIGN.md); lifecycle.go says how
// one becomes another.
type StateName string

// Component states (DESIGN.md).
const (
	StateUpToDate              StateName = "up-to-date"
	StateUpdateAvailable       StateName = "update-available"
	StateStaged                StateName = "staged"
	StateAwaitingAuthorization StateName = "awaiting-authorization"
	StateFailed                StateName = "failed"
	// StateNoRelease: the repository offers this component nothing it
	// could install (no channel pointer for its platform, a pin that is
	// not published, or only a withdrawn release while nothing is
	// installed): a misspelt name or channel, or a release not published
	// yet. It is a warning, never "up to date".
	StateNoRelease StateName = "no-release"
	// StateNotChecked is how reports name StateNew: no check has looked
	// at the component yet, so nothing is known of it.
	StateNotChecked StateName = "not-checked"
)

// shown is the state as reports name it.
func (s StateName) shown() StateName {
	if s == StateNew {
		return StateNotChecked
	}
	return s
}

// State is <state>/state.json. It holds only what the agent cannot derive:
// it is written only when it changes, so a failed step leaves it as it was.
type State struct {
	Repository RepositoryState `json:"repository"`
	// PHIClasses and PolicyVersion are those of the last code-signed device
	// policy accepted (gate.go); the agent's floor is always added to them.
	PHIClasses    []string                   `json:"phi_device_classes,omitempty"`
	PolicyVersion int64                      `json:"policy_version,omitempty"`
	Components    map[string]*ComponentState `json:"components"`
}

// CheckResult (last-check.json) is how a check of the repository ended: when, and if it
// failed, how (Failure) and why (Error). LastSuccess is the time of the
// last check that succeeded (zero: none yet).
type CheckResult struct {
	At          time.Time    `json:"at"`
	OK          bool         `json:"ok"`
	Failure     CheckFailure `json:"failure,omitempty"`
	Error       string       `json:"error,omitempty"`
	LastSuccess time.Time    `json:"last_success,omitzero"`
}

// CheckFailure is the kind of a failed check.
type CheckFailure string

// Kinds of failed checks.
const (
	// CheckVerification: metadata or an artifact did not verify (exit 3;
	// possibly an attack).
	CheckVerification CheckFailure = "verification"
	// CheckUnreachable: the repository could not be reached.
	CheckUnreachable CheckFailure = "unreachable"
	// CheckError: anything else (a full disk, a configuration error).
	CheckError CheckFailure = "error"
)

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
	Pinned    string    `json:"pinned,omitempty"`
	State     StateName `json:"state"`
	LastError string    `json:"last_error,omitempty"`
	// Unpublished says why the repository offers nothing for this
	// component (state no-release); "" otherwise.
	Unpublished string `json:"unpublished,omitempty"`
	// Pointer is what the component's channel pointer said at the last
	// check (nil: pinned, or no pointer): the release it names and its
	// rollout percent, reported to the fleet service.
	Pointer *PointerSeen `json:"pointer,omitempty"`
}

// PointerSeen is a verified channel pointer's release and rollout share.
type PointerSeen struct {
	Version string `json:"version"`
	// Percent is the share of devices the release is rolled out to, 1 to
	// 100 (100: the pointer limits nothing).
	Percent int `json:"percent"`
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

// ReleaseUnknown says whether the installed version's release metadata,
// and so its features, is unknown: the state was rebuilt from the install
// tree and no check has re-learned it yet (relearnReleases). Nothing gated
// may be active on the strength of such a component's metadata.
func (c *ComponentState) ReleaseUnknown() bool {
	return c.Installed != "" && c.InstalledRelease == nil
}

// state.json and its last good copy, relative to the state directory.
const (
	stateFile     = "state.json"
	statePrevFile = "state.json.prev"
	maxStateSize  = 16 << 20
)

// NoteStateRecovered: state.json was damaged or lost and was restored from
// its last good copy or rebuilt; it is resolved once a check has re-learned
// the release metadata of everything installed.
const NoteStateRecovered NoteKind = "state-recovered"

func (a *Agent) statePath() string { return filepath.Join(a.dir, stateFile) }

// Recovering the agent's state.
//
// saveState writes state.json and then the same bytes to state.json.prev,
// each atomically, so at any instant each file holds a complete state and
// state.json is never older than the copy. state.json is the commit point
// (journal.go) and wins whenever it is usable. If it is missing,
// unreadable, not JSON of the right shape or fails checkState, the last
// good copy is used; if that is not usable either, the state is rebuilt
// from what survives outside it (rebuildState): the install tree, and the
// audit log for pins and the agent's own version. Either way the result is
// written back at once, with a warning notification and an audit entry
// saying what was damaged and what was recovered, and the command goes on:
// `bcagent status` always answers.
//
// An apply the journal says was interrupted is settled first: with a
// usable state the journal is finished or undone as usual, with none it is
// undone (whether it committed cannot be known, and the old version is the
// one known to run), and only then is the install tree read.

// stateRead is what readState found.
type stateRead struct {
	st     *State
	data   []byte   // the bytes st was parsed from
	from   string   // stateFile or statePrevFile; "" if neither was usable
	damage []string // what was wrong, for the warning and the audit entry
}

// readState reads state.json, or state.json.prev if state.json is not
// usable. It never rebuilds and never writes.
func (a *Agent) readState(root *os.Root) stateRead {
	var r stateRead
	for _, name := range []string{stateFile, statePrevFile} {
		data, err := readFileRoot(root, name, maxStateSize)
		if err == nil {
			var st *State
			if st, err = a.parseState(data); err == nil {
				r.st, r.data, r.from = st, data, name
				return r
			}
		}
		switch {
		case errors.Is(err, fs.ErrNotExist) && name == stateFile:
			r.damage = append(r.damage, name+" is missing")
		case errors.Is(err, fs.ErrNotExist):
			r.damage = append(r.damage, name+" is missing too")
		default:
			r.damage = append(r.damage, a.confined(root, name, err).Error())
		}
	}
	return r
}

// parseState decodes and checks one copy of the state.
func (a *Agent) parseState(data []byte) (*State, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	if _, ok := top["components"]; !ok {
		return nil, errors.New(`not an agent state (no "components")`)
	}
	st := &State{}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, err
	}
	if err := checkState(st); err != nil {
		return nil, err
	}
	return st, nil
}

// checkState is the sanity check a copy of the state must pass to be used:
// names and versions the agent could have written, and releases that the
// code using them can rely on (metadata present and about that very
// component and version).
func checkState(st *State) error {
	states := anyState
	for name, c := range st.Components {
		if err := repo.ValidateName("component", name); err != nil {
			return err
		}
		if c == nil {
			continue
		}
		for _, v := range []struct{ field, version string }{{"installed", c.Installed}, {"previous", c.Previous}, {"pinned", c.Pinned}} {
			if v.version == "" {
				continue
			}
			if _, err := repo.ParseVersion(v.version); err != nil {
				return fmt.Errorf("component %s: %s: %w", name, v.field, err)
			}
		}
		if !slices.Contains(states, c.State) {
			return fmt.Errorf("component %s: unknown state %q", name, c.State)
		}
		for _, r := range []struct {
			field   string
			rel     *Release
			version *string
		}{
			{"installed_release", c.InstalledRelease, &c.Installed}, {"previous_release", c.PreviousRelease, &c.Previous},
			{"available", c.Available, nil}, {"staged", c.Staged, nil}, {"failed", c.Failed, nil},
		} {
			if r.rel == nil {
				continue
			}
			if err := checkRelease(name, r.rel); err != nil {
				return fmt.Errorf("component %s: %s: %w", name, r.field, err)
			}
			if r.version != nil && *r.version != r.rel.Version {
				return fmt.Errorf("component %s: %s is %s, not %q", name, r.field, r.rel.Version, *r.version)
			}
		}
	}
	return nil
}

func checkRelease(component string, rel *Release) error {
	if _, err := repo.ParseVersion(rel.Version); err != nil {
		return err
	}
	if err := repo.ValidateTargetPath(rel.Path); err != nil {
		return err
	}
	if b, err := hex.DecodeString(rel.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("sha256 %q is not a sha256", rel.SHA256)
	}
	if rel.Length < 0 {
		return fmt.Errorf("negative length %d", rel.Length)
	}
	if rel.Meta == nil {
		return errors.New("no release metadata")
	}
	if rel.Meta.Component != component || rel.Meta.Version != rel.Version {
		return fmt.Errorf("metadata is about %s %s", rel.Meta.Component, rel.Meta.Version)
	}
	return nil
}

// loadState reads the agent's state, recovering a damaged one (see above).
// Only a state directory that cannot be opened at all is an error.
func (a *Agent) loadState() (*State, error) {
	root, err := a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	r := a.readState(root)
	if r.from != stateFile && a.journalPending(root) {
		// An interrupted apply: settle it first (recover), so the install
		// tree says what runs before anything is taken from it.
		if err := a.recover(); err != nil {
			return nil, fmt.Errorf("recovering an interrupted apply: %w", err)
		}
		r = a.readState(root)
	}
	st := r.st
	switch r.from {
	case stateFile:
		a.stateBytes = r.data
		a.fillComponents(st)
	case statePrevFile:
		a.stateBytes = nil
		a.fillComponents(st)
		notes := append([]string{"restored from " + statePrevFile + ", the last good copy"}, a.reconcileTree(st)...)
		a.adoptState(root, st, r.damage, notes)
	default:
		a.stateBytes = nil
		var notes []string
		st, notes = a.rebuildState(nil)
		a.fillComponents(st)
		if len(notes) > 0 || !fresh(r.damage) {
			a.adoptState(root, st, r.damage, append([]string{"rebuilt from the install tree and the audit log"}, notes...))
		}
	}
	return st, nil
}

// fresh says whether readState's damage only says that neither file
// exists: a state directory that has never saved a state.
func fresh(damage []string) bool {
	return len(damage) == 2 && damage[0] == stateFile+" is missing" && damage[1] == statePrevFile+" is missing too"
}

// fillComponents gives every configured component an entry.
func (a *Agent) fillComponents(st *State) {
	if st.Components == nil {
		st.Components = map[string]*ComponentState{}
	}
	for _, c := range a.cfg.Components {
		if st.Components[c] == nil {
			st.Components[c] = &ComponentState{State: StateNew}
		}
	}
}

// adoptState writes a recovered state and says so: a warning notification,
// an audit entry and a log line. A failure to write is logged, never
// returned: the command goes on with st, and the next save writes it.
func (a *Agent) adoptState(root *os.Root, st *State, damage, recovered []string) {
	data, err := marshalState(st)
	if err == nil {
		err = a.writeState(root, data)
	}
	if err != nil {
		a.log.Error("writing the recovered state", "err", err)
	} else {
		a.stateBytes = data
	}
	what, how := strings.Join(damage, "; "), strings.Join(recovered, "; ")
	a.log.Warn("agent state recovered", "damaged", what, "recovered", how)
	msg := fmt.Sprintf("the agent's state was damaged (%s) and was %s", what, how)
	if slices.ContainsFunc(a.cfg.Components, func(n string) bool { return n != SelfComponent && st.Components[n].ReleaseUnknown() }) {
		msg += "; the release metadata (features) of what is installed is unknown until the next successful check, and nothing is staged"
	}
	if err != nil {
		msg += fmt.Sprintf("; writing the recovered state failed (%v), so this repeats until it can be written", err)
		// Once in the audit log, not at every command.
		if list, lerr := a.Notifications(); lerr == nil && slices.ContainsFunc(list, func(n Notification) bool { return n.Kind == NoteStateRecovered && n.Message == msg }) {
			return
		}
	}
	a.audit(AuditEvent{Event: EventStateRecovered, Detail: what + ": " + how})
	a.raise(NoteStateRecovered, SeverityWarning, "", "", msg)
}

// rebuildState makes a state from what survives outside state.json: each
// component's install tree (current and its version directories) and the
// audit log (pins, and the version of the agent itself, which the install
// tree does not hold). Release metadata is unknown (nil) until the next
// check re-learns it; nothing is available or staged (staged files are left
// for the next stage, which keeps only a download it can verify again).
// skip names, per component, a version directory that must not be taken
// as the previous version (an install the journal just undid). notes says
// what was found, and is empty if nothing was.
func (a *Agent) rebuildState(skip map[string]string) (*State, []string) {
	st := &State{Components: map[string]*ComponentState{}}
	var notes []string
	events, lerr := a.auditEvents()
	if lerr != nil {
		notes = append(notes, fmt.Sprintf("the audit log is not usable (%v)", lerr))
	}
	// The last code-signed device policy accepted (gate.go): its version
	// is a ratchet that must survive a rebuild.
	for _, ev := range events {
		if ev.Event != EventPolicyAccepted || ev.Component != "" {
			continue
		}
		var classes []string
		v, err := strconv.ParseInt(ev.Version, 10, 64)
		if err != nil || json.Unmarshal([]byte(ev.Detail), &classes) != nil {
			continue
		}
		st.PolicyVersion, st.PHIClasses = v, classes
	}
	if st.PolicyVersion > 0 {
		notes = append(notes, fmt.Sprintf("device policy version %d", st.PolicyVersion))
	}
	for _, name := range a.cfg.Components {
		c := &ComponentState{State: StateUpToDate}
		st.Components[name] = c
		installed, versions := scanInstallTree(filepath.Join(a.cfg.InstallRoot, name))
		if installed != "" {
			c.Installed = installed
			c.Previous = choosePrevious(installed, versions, skip[name])
			notes = append(notes, fmt.Sprintf("%s %s installed (previous: %s)", name, installed, orNone(c.Previous)))
		}
		for _, ev := range events {
			if ev.Component != name {
				continue
			}
			switch ev.Event {
			case EventPinned:
				c.Pinned = ev.Version
			case EventUnpinned:
				c.Pinned = ""
			case EventInstalled, EventRollback:
				if name == SelfComponent && installed == "" {
					c.Installed = ev.Version
				}
			}
		}
		if _, err := repo.ParseVersion(c.Pinned); err != nil {
			c.Pinned = ""
		} else {
			notes = append(notes, fmt.Sprintf("%s pinned to %s", name, c.Pinned))
		}
		if name == SelfComponent && installed == "" {
			if _, err := repo.ParseVersion(c.Installed); err != nil {
				c.Installed = ""
			} else {
				notes = append(notes, fmt.Sprintf("%s %s installed (audit log)", name, c.Installed))
			}
		}
	}
	if lerr != nil && len(notes) == 1 {
		return st, nil // nothing found: an unusable log alone is not news here
	}
	return st, notes
}

// auditEvents returns the entries of the verified audit log, oldest first.
func (a *Agent) auditEvents() ([]AuditEvent, error) {
	entries, err := a.auditLog().Verify()
	if err != nil {
		return nil, err
	}
	out := make([]AuditEvent, 0, len(entries))
	for _, e := range entries {
		var ev AuditEvent
		if json.Unmarshal(e.Entry, &ev) == nil {
			out = append(out, ev)
		}
	}
	return out, nil
}

// scanInstallTree reads a component's directory: the version current
// names, if it is a valid version and a real directory, and every version
// directory.
func scanInstallTree(compDir string) (installed string, versions []string) {
	entries, err := os.ReadDir(compDir)
	if err != nil {
		return "", nil
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, err := repo.ParseVersion(e.Name()); err == nil {
			versions = append(versions, e.Name())
		}
	}
	if v, err := CurrentVersion(compDir); err == nil && slices.Contains(versions, v) {
		installed = v
	}
	return installed, versions
}

// choosePrevious picks the version a rollback would go back to: the newest
// one older than installed, or else the newest other one (after a rollback
// the previous version is the newer one), never skip.
func choosePrevious(installed string, versions []string, skip string) string {
	best, bestOlder := "", ""
	for _, v := range versions {
		if v == installed || v == skip {
			continue
		}
		if best == "" || repo.CompareVersions(v, best) > 0 {
			best = v
		}
		if repo.CompareVersions(v, installed) < 0 && (bestOlder == "" || repo.CompareVersions(v, bestOlder) > 0) {
			bestOlder = v
		}
	}
	if bestOlder != "" {
		return bestOlder
	}
	return best
}

// reconcileTree makes a restored copy of the state agree with the install
// tree, which says what runs once recover has settled any interrupted
// apply: the copy may be older than the state.json that was lost (a crash
// or a failure between writing the two). The agent itself is not in the
// install tree and is left as the copy says.
func (a *Agent) reconcileTree(st *State) []string {
	var notes []string
	for _, name := range a.cfg.Components {
		if name == SelfComponent {
			continue
		}
		c := st.Components[name]
		installed, versions := scanInstallTree(filepath.Join(a.cfg.InstallRoot, name))
		if installed == c.Installed {
			continue
		}
		notes = append(notes, fmt.Sprintf("%s: the copy said %s installed, the install tree says %s", name, orNone(c.Installed), orNone(installed)))
		known := map[string]*Release{}
		for _, r := range []*Release{c.InstalledRelease, c.PreviousRelease} {
			if r != nil {
				known[r.Version] = r
			}
		}
		c.Installed, c.Previous = installed, ""
		if installed != "" {
			c.Previous = choosePrevious(installed, versions, "")
		}
		c.InstalledRelease, c.PreviousRelease = known[c.Installed], known[c.Previous]
		if c.Installed == "" {
			c.InstalledRelease = nil
		}
		if c.Previous == "" {
			c.PreviousRelease = nil
		}
		c.Available, c.Staged, c.Failed, c.LastError = nil, nil, nil, ""
		c.State = deriveState(c) // recovery: re-derived, not a transition
	}
	return notes
}

// relearnReleases fills the release metadata a recovered state lacks
// (InstalledRelease, PreviousRelease) from the verified metadata of this
// check, for versions the repository still lists. One version is one
// release: artifact paths are immutable and a second artifact for a
// published version is refused. It never fails the check: a release it
// cannot find, or that does not verify (its metadata, or its gate manifest
// if it declares features), stays unknown, which is the safe default
// (nothing gated is active on the strength of unknown metadata), and is
// logged; the check goes on, so updates still install.
func (a *Agent) relearnReleases(ctx context.Context, s *session, st *State) {
	unknown := false
	for _, name := range a.cfg.Components {
		c := st.Components[name]
		for _, slot := range []struct {
			version string
			rel     **Release
		}{{c.Installed, &c.InstalledRelease}, {c.Previous, &c.PreviousRelease}} {
			if slot.version == "" || *slot.rel != nil {
				continue
			}
			rel, err := a.findRelease(ctx, s, name, slot.version)
			if err == nil && rel != nil {
				err = a.verifyGates(rel)
			}
			if err != nil {
				a.log.Error("re-learning release metadata; it stays unknown", "component", name, "version", slot.version, "err", err)
				continue
			}
			if rel != nil {
				*slot.rel = rel
				a.log.Info("re-learned release metadata", "component", name, "version", rel.Version, "path", rel.Path)
			}
		}
		unknown = unknown || (name != SelfComponent && c.ReleaseUnknown())
	}
	if !unknown {
		a.resolve("", NoteStateRecovered)
	}
}

// findRelease finds the release of one version of a component in the
// verified metadata, yanked or not (it is what is on disk): in the
// top-level targets of a flat repository; with hashed bins, through the
// release index or else at the artifact paths the audit log recorded for
// that version (a repository from before the index). Nil, nil: not in the
// repository any more.
func (a *Agent) findRelease(ctx context.Context, s *session, component, version string) (*Release, error) {
	top := s.up.GetTrustedMetadataSet().Targets[metadata.TARGETS]
	prefix := component + "/" + a.cfg.Platform + "/" + version + "/"
	var paths []string
	if top.Signed.Delegations == nil {
		for p := range top.Signed.Targets {
			if strings.HasPrefix(p, prefix) && !strings.HasSuffix(p, repo.SignatureSuffix) {
				paths = append(paths, p)
			}
		}
		slices.Sort(paths)
	} else {
		data, _, err := s.fetchSmall(ctx, repo.ReleasesPath(component, a.cfg.Platform), repo.MaxReleaseIndexSize)
		switch {
		case err == nil:
			ix, err := repo.ParseReleaseIndex(data, component, a.cfg.Platform)
			if err != nil {
				return nil, verifyf("%v", err)
			}
			if p, ok := ix.Releases[version]; ok {
				paths = append(paths, p)
			}
		case !errors.Is(err, errTargetNotFound):
			return nil, err
		}
	}
	if top.Signed.Delegations != nil && len(paths) == 0 {
		// Hashed bins without an index (a repository from before it): the
		// paths the audit log recorded for this version, if it verifies.
		events, _ := a.auditEvents()
		for _, ev := range slices.Backward(events) {
			if ev.Component == component && ev.Version == version && (ev.Event == EventStaged || ev.Event == EventUpdateAvailable) &&
				strings.HasPrefix(ev.Detail, prefix) && !slices.Contains(paths, ev.Detail) {
				paths = append(paths, ev.Detail)
			}
		}
	}
	for _, p := range paths {
		tf, err := s.lookup(p)
		if errors.Is(err, errTargetNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if tf.Custom == nil {
			continue
		}
		meta, err := repo.ParseRelease(tf.Custom)
		if err != nil {
			return nil, verifyf("%s: %v", p, err)
		}
		if meta.Component != component || meta.Version != version || meta.Platform != a.cfg.Platform ||
			p != repo.ArtifactPath(component, a.cfg.Platform, version, path.Base(p)) {
			return nil, verifyf("%s: metadata says %s %s for %s (mix-and-match?)", p, meta.Component, meta.Version, meta.Platform)
		}
		sha, err := targetSHA256(tf)
		if err != nil {
			return nil, err
		}
		return &Release{Path: p, Version: version, SHA256: sha, Length: tf.Length, Meta: meta}, nil
	}
	return nil, nil
}

func marshalState(st *State) ([]byte, error) {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// saveState writes state.json atomically, and only if it changed, then the
// same bytes to its last good copy state.json.prev.
func (a *Agent) saveState(st *State) error {
	data, err := marshalState(st)
	if err != nil {
		return err
	}
	if bytes.Equal(data, a.stateBytes) {
		return nil
	}
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	if err := a.writeState(root, data); err != nil {
		return err
	}
	a.stateBytes = data
	return nil
}

// writeState writes state.json, then state.json.prev, each through a new
// temporary file, fsync and rename, then fsyncs the directory once: a
// crash leaves each file old or new, and state.json (the one that counts)
// is durable when this returns. A copy that cannot be written is removed
// rather than left older than state.json, and the save still succeeds.
func (a *Agent) writeState(root *os.Root, data []byte) error {
	if err := writeFileRoot(root, stateFile, data, 0o600); err != nil {
		return a.confined(root, stateFile, err)
	}
	if err := writeFileRoot(root, statePrevFile, data, 0o600); err != nil {
		a.log.Warn("keeping the last good copy of the state", "err", a.confined(root, statePrevFile, err))
		root.Remove(statePrevFile)
	}
	return syncDirRoot(root, ".")
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func ensureDir(p string) error {
	if err := os.MkdirAll(p, 0o700); err != nil {
		return err
	}
	return nil
}
