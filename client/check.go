package client

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"errors"
	"fmt"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"path"

	"github.com/beckmanconnect/bcupdate/repo"
)

// ComponentReport is what a check found for one component.
type ComponentReport struct {
	Name      string    `json:"name"`
	Installed string    `json:"installed,omitempty"`
	Available string    `json:"available,omitempty"`
	Staged    string    `json:"staged,omitempty"`
	State     StateName `json:"state"`
	Path      string    `json:"path,omitempty"`
	// Problem says why the repository offers nothing (state no-release).
	Problem string `json:"problem,omitempty"`
}

// CheckReport is the result of Check.
type CheckReport struct {
	TimestampVersion int64             `json:"timestamp_version"`
	Components       []ComponentReport `json:"components"`
}

// Check refreshes TUF metadata, reads each configured component's channel
// pointer and records the release it names if it is newer than what is
// installed. It never downgrades: a channel pointing at an older release
// than the installed one leaves the component up to date.
func (a *Agent) Check(ctx context.Context) (*CheckReport, error) {
	defer a.beginBatch(ctx)()
	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	s, err := a.check(ctx, st)
	if err != nil {
		return nil, a.checkFailed(err)
	}
	if err := a.saveState(st); err != nil {
		return nil, err
	}
	a.noteCheck(nil)
	return a.report(s, st), nil
}

// checkFailed records a failed check (failed) and its result for status
// (last-check.json); state.json stays as it was before the check.
func (a *Agent) checkFailed(err error) error {
	err = a.failed(err, "", "")
	a.noteCheck(err)
	return err
}

// lastCheckFile holds the last check's result (CheckResult), apart from
// state.json, which a failed step must leave as it was.
const lastCheckFile = "last-check.json"

// noteCheck records how the check that just ended went (err nil: it
// succeeded). Failing to record it is logged, never the check's error.
func (a *Agent) noteCheck(err error) {
	if a.bundle != nil {
		return // an import is not a look at the repository
	}
	r := &CheckResult{At: time.Now().UTC().Truncate(time.Second), OK: err == nil}
	if prev := a.lastCheck(); prev != nil {
		r.LastSuccess = prev.LastSuccess
	}
	if err == nil {
		r.LastSuccess = r.At
	} else {
		r.Failure, r.Error = checkFailure(err), err.Error()
	}
	data, jerr := json.MarshalIndent(r, "", "  ")
	root, rerr := a.openRoot()
	if jerr == nil && rerr == nil {
		defer root.Close()
		rerr = writeFileRoot(root, lastCheckFile, append(data, '\n'), 0o600)
	}
	if err := errors.Join(jerr, rerr); err != nil {
		a.log.Error("recording the check's result", "err", err)
	}
}

// lastCheck reads last-check.json (nil: no check recorded, or unreadable).
func (a *Agent) lastCheck() *CheckResult {
	root, err := a.openRoot()
	if err != nil {
		return nil
	}
	defer root.Close()
	data, err := readFileRoot(root, lastCheckFile, 1<<20)
	if err != nil {
		return nil
	}
	var r CheckResult
	if json.Unmarshal(data, &r) != nil {
		return nil
	}
	return &r
}

func (a *Agent) report(s *session, st *State) *CheckReport {
	rep := &CheckReport{TimestampVersion: st.Repository.TimestampVersion}
	for _, name := range a.cfg.Components {
		c := st.Components[name]
		cr := ComponentReport{Name: name, Installed: c.Installed, State: c.State.shown(), Problem: c.Unpublished}
		if c.State == StateFailed {
			cr.Problem = why(name, c)
		}
		if c.Available != nil {
			cr.Available, cr.Path = c.Available.Version, c.Available.Path
		}
		if c.Staged != nil {
			cr.Staged = c.Staged.Version
		}
		rep.Components = append(rep.Components, cr)
	}
	return rep
}

// check does the work of Check on st without saving it.
func (a *Agent) check(ctx context.Context, st *State) (*session, error) {
	s, err := a.refresh(ctx)
	if err != nil {
		return nil, err
	}
	if a.bundle == nil {
		// An import leaves what the agent knows of its repository alone.
		ts := s.up.GetTrustedMetadataSet().Timestamp
		st.Repository = RepositoryState{TimestampVersion: ts.Signed.Version, Expires: ts.Signed.Expires.UTC()}
	}
	policy, err := a.fetchPolicy(ctx, s)
	if err != nil {
		return nil, err
	}
	type found struct {
		name string
		rel  *Release
		none *absence
		skip bool // an import whose bundle does not carry the component
	}
	// Each component's channel pointer (or pinned release) is looked up
	// and fetched on its own goroutine (at most maxParallel); nothing is
	// written until all of them verified.
	all := make([]found, len(a.cfg.Components))
	errs := make([]error, len(a.cfg.Components))
	forEach(len(all), maxParallel, func(i int) {
		name := a.cfg.Components[i]
		var rel *Release
		var none *absence
		var err error
		if a.bundle != nil {
			var skip bool
			rel, none, skip, err = a.bundleRelease(ctx, s, name, st.Components[name])
			all[i], errs[i] = found{name, rel, none, skip}, err
			return
		}
		if pin := st.Components[name].Pinned; pin != "" {
			rel, err = a.pinnedRelease(ctx, s, name, pin, st.Components[name])
			if rel == nil && err == nil {
				none = &absence{why: fmt.Sprintf("%s is pinned to %s, which the repository does not publish for %s (or has withdrawn): bcagent unpin --component %s, or pin a published version", name, pin, a.cfg.Platform, name)}
			}
		} else {
			rel, none, err = a.channelRelease(ctx, s, name)
		}
		all[i], errs[i] = found{name: name, rel: rel, none: none}, err
	})
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("component %s: %w", all[i].name, err)
		}
	}
	if err := a.saveCRLs(ctx, s); err != nil {
		return nil, err
	}
	// The gate's inputs need the code-signing key too (gate.go), checked
	// with the CRLs just saved.
	if err := a.acceptPolicy(st, policy); err != nil {
		return nil, err
	}
	for _, f := range all {
		if err := a.verifyGates(f.rel); err != nil {
			return nil, fmt.Errorf("component %s: %w", f.name, err)
		}
	}
	// A recovered state.json lacks the installed releases' metadata (state.go).
	a.relearnReleases(ctx, s, st)
	// Everything verified: now update state, the audit log and notifications.
	// An import resolves nothing here: a verified bundle says nothing of
	// the repository's reach or expiry, nor of an online check or another
	// bundle that failed verification (their critical notifications stay
	// until an online check succeeds).
	if a.bundle == nil {
		a.resolve("", NoteMetadataExpired, NoteVerificationFailure, NoteRepositoryUnreachable, NoteCheckFailed)
		a.noteExpiry(s)
	}
	for _, f := range all {
		if f.skip {
			continue
		}
		if c := st.Components[f.name]; c != nil {
			c.Pointer = nil
			if p, ok := s.pointers.Load(f.name); ok && c.Pinned == "" {
				ps := p.(PointerSeen)
				c.Pointer = &ps
			}
		}
		if err := a.offer(s, st, f.name, f.rel, f.none); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// absence is why a check found no release for a component. soft: only
// because the release the channel names was withdrawn, which is a problem
// only while nothing is installed.
type absence struct {
	why  string
	soft bool
}

// offer settles what the check found for one component: rel, the release
// its channel or pin names (nil: none, and none says why when that is a
// problem), becomes available unless it is not newer or was rolled back
// once; a staged copy of anything else is dropped.
func (a *Agent) offer(s *session, st *State, name string, rel *Release, none *absence) error {
	c := st.Components[name]
	prev := c.Available
	c.Available = nil
	if rel != nil && (c.Installed == "" || repo.CompareVersions(rel.Version, c.Installed) > 0 ||
		(c.Pinned != "" && rel.Version != c.Installed)) {
		c.Available = rel // a pin may also go back to an older version
	}
	a.noteYanked(s, name, c)
	if c.Failed != nil && c.Available != nil {
		if c.Available.SHA256 == c.Failed.SHA256 {
			c.Available = nil // rolled back once: not retried
		} else {
			c.Failed, c.LastError = nil, "" // a newer release replaces it
		}
	}
	if c.Staged != nil && (c.Available == nil || c.Staged.SHA256 != c.Available.SHA256) {
		// The channel moved on (or back): the staged file is stale.
		stale := c.Staged.Version
		a.dropStaged(name, c)
		if err := a.transition(name, c, Dropped, occasion{Version: stale}); err != nil {
			return err
		}
	}
	if none != nil && (none.soft && c.Installed != "") {
		none = nil
	}
	c.Unpublished = ""
	switch {
	case c.Staged != nil:
		return a.refreshGate(st, name, c)
	case c.Available == nil && none != nil:
		c.Unpublished = none.why
		return a.transition(name, c, Unpublished, occasion{Message: none.why})
	case c.Available == nil:
		return a.transition(name, c, Unoffered, occasion{})
	default:
		return a.transition(name, c, Found, occasion{
			Version: c.Available.Version, Detail: c.Available.Path,
			Message: fmt.Sprintf("%s %s is available (installed: %s)", name, c.Available.Version, orNone(c.Installed)),
			Again:   prev == nil || prev.SHA256 != c.Available.SHA256,
		})
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// expiringWithin is how close to expiry root, targets or snapshot must be
// for the agent to warn (timestamp is short-lived by design).
const expiringWithin = 3 * 24 * time.Hour

func (a *Agent) noteExpiry(s *session) {
	tm := s.up.GetTrustedMetadataSet()
	soonest, role := tm.Root.Signed.Expires, "root"
	if t := tm.Targets[metadata.TARGETS]; t != nil && t.Signed.Expires.Before(soonest) {
		soonest, role = t.Signed.Expires, "targets"
	}
	if tm.Snapshot != nil && tm.Snapshot.Signed.Expires.Before(soonest) {
		soonest, role = tm.Snapshot.Signed.Expires, "snapshot"
	}
	if time.Until(soonest) < expiringWithin {
		a.raise(NoteMetadataExpiring, SeverityWarning, "", "", fmt.Sprintf("the repository's %s metadata expires at %s; after that no update can be installed until the publisher re-signs it", role, soonest.UTC().Format(time.RFC3339)))
		return
	}
	a.resolve("", NoteMetadataExpiring)
}

// refreshGate marks a staged release whose gated features have no
// decision as awaiting authorization, and one whose features all have one
// as staged again.
func (a *Agent) refreshGate(st *State, name string, c *ComponentState) error {
	pending, err := a.pendingFeatures(st, name, c.Staged)
	switch {
	case len(pending) > 0 || err != nil:
		if c.State == StateStaged {
			return a.transition(name, c, Awaiting, occasion{Version: c.Staged.Version, Quiet: true})
		}
	case c.State == StateAwaitingAuthorization:
		return a.transition(name, c, Ready, occasion{Version: c.Staged.Version,
			Message: fmt.Sprintf("%s %s is downloaded, verified and ready to install", name, c.Staged.Version)})
	}
	return nil
}

// channelRelease follows the component's channel pointer to the release it
// names. No release and no error: the channel offers nothing now, and the
// absence says why when that is a problem (the channel does not exist for
// this platform, or names a withdrawn release); a device outside a staged
// rollout simply waits.
func (a *Agent) channelRelease(ctx context.Context, s *session, component string) (*Release, *absence, error) {
	chPath := repo.ChannelPath(component, a.cfg.Platform, a.cfg.Channel)
	data, _, err := s.fetchSmall(ctx, chPath, repo.MaxPointerSize)
	if errors.Is(err, errTargetNotFound) {
		a.log.Info("no release on channel", "component", component, "channel", chPath)
		return nil, &absence{why: a.noReleaseWhy(component)}, nil
	}
	if err != nil {
		return nil, nil, classifyTUF(err)
	}
	ptr, err := repo.ParsePointer(data)
	if err != nil {
		return nil, nil, verifyf("%s: %v", chPath, err)
	}
	tf, err := s.lookup(ptr.Release)
	if err != nil {
		return nil, nil, verifyf("%s names %s: %v", chPath, ptr.Release, err)
	}
	meta, err := repo.ParseRelease(tf.Custom)
	if err != nil {
		return nil, nil, verifyf("%s: %v", ptr.Release, err)
	}
	pct := ptr.Percent
	if pct <= 0 || pct > 100 {
		pct = 100 // repo.InRollout: no percent is every device
	}
	s.pointers.Store(component, PointerSeen{Version: meta.Version, Percent: pct})
	if meta.Yanked {
		a.log.Info("channel names a yanked release; ignored", "release", ptr.Release)
		return nil, &absence{soft: true, why: fmt.Sprintf("channel %s of %s for %s names %s, which its publisher withdrew (%s), and nothing is installed",
			a.cfg.Channel, component, a.cfg.Platform, meta.Version, orNone(meta.YankReason))}, nil
	}
	if !repo.InRollout(a.cfg.DeviceID, component, meta.Version, ptr.Percent) {
		a.log.Info("not in this release's staged rollout yet", "release", ptr.Release, "percent", ptr.Percent)
		return nil, nil, nil
	}
	want := repo.ArtifactPath(component, a.cfg.Platform, meta.Version, path.Base(ptr.Release))
	if meta.Component != component || meta.Platform != a.cfg.Platform || want != ptr.Release {
		return nil, nil, verifyf("%s names %s, whose metadata says %s %s for %s (mix-and-match?)",
			chPath, ptr.Release, meta.Component, meta.Version, meta.Platform)
	}
	sha, err := targetSHA256(tf)
	if err != nil {
		return nil, nil, err
	}
	return &Release{Path: ptr.Release, Version: meta.Version, SHA256: sha, Length: tf.Length, Meta: meta}, nil, nil
}

// noReleaseWhy is the warning for a component whose channel does not
// exist for this device's platform: what was looked for, and what to do.
func (a *Agent) noReleaseWhy(component string) string {
	return fmt.Sprintf("the repository has no release of %q for %s on channel %q: check the component name and channel (bcagent config show; bcpublish release list on the publisher's side) and fix them with bcagent config set",
		component, a.cfg.Platform, a.cfg.Channel)
}

// pinnedRelease finds the release of a pinned version in the verified
// metadata, whatever the channel says.
func (a *Agent) pinnedRelease(ctx context.Context, s *session, component, version string, c *ComponentState) (*Release, error) {
	top := s.up.GetTrustedMetadataSet().Targets[metadata.TARGETS]
	prefix := component + "/" + a.cfg.Platform + "/" + version + "/"
	candidates := top.Signed.Targets
	if top.Signed.Delegations != nil {
		// Hashed bins cannot be listed without downloading them all: the
		// release index names the version's artifact.
		candidates = map[string]*metadata.TargetFiles{}
		data, _, err := s.fetchSmall(ctx, repo.ReleasesPath(component, a.cfg.Platform), repo.MaxReleaseIndexSize)
		switch {
		case err == nil:
			ix, err := repo.ParseReleaseIndex(data, component, a.cfg.Platform)
			if err != nil {
				return nil, verifyf("%v", err)
			}
			if p, ok := ix.Releases[version]; ok {
				tf, err := s.lookup(p)
				if errors.Is(err, errTargetNotFound) {
					return nil, verifyf("the release index names %s, which the repository does not list", p)
				}
				if err != nil {
					return nil, err
				}
				candidates[p] = tf
			}
		case !errors.Is(err, errTargetNotFound):
			return nil, err
		}
	}
	if top.Signed.Delegations != nil && len(candidates) == 0 {
		// No index (a repository from before it) or not in it: the file
		// name the known releases use, with the version replaced.
		for _, known := range []*Release{c.InstalledRelease, c.Available, c.PreviousRelease} {
			if known == nil || known.Meta == nil {
				continue
			}
			name := strings.ReplaceAll(path.Base(known.Path), known.Version, version)
			p := repo.ArtifactPath(component, a.cfg.Platform, version, name)
			if tf, err := s.lookup(p); err == nil {
				candidates[p] = tf
			} else if !errors.Is(err, errTargetNotFound) {
				return nil, err
			}
		}
	}
	for p, tf := range candidates {
		if !strings.HasPrefix(p, prefix) || strings.HasSuffix(p, repo.SignatureSuffix) || tf.Custom == nil {
			continue
		}
		meta, err := repo.ParseRelease(tf.Custom)
		if err != nil {
			return nil, verifyf("%s: %v", p, err)
		}
		if meta.Component != component || meta.Version != version || meta.Platform != a.cfg.Platform {
			return nil, verifyf("%s: metadata says %s %s for %s (mix-and-match?)", p, meta.Component, meta.Version, meta.Platform)
		}
		if meta.Yanked {
			return nil, nil
		}
		sha, err := targetSHA256(tf)
		if err != nil {
			return nil, err
		}
		tf.Path = p
		return &Release{Path: p, Version: meta.Version, SHA256: sha, Length: tf.Length, Meta: meta}, nil
	}
	a.log.Info("pinned version is not published", "component", component, "version", version)
	return nil, nil
}

// noteYanked warns when the installed release has been yanked.
func (a *Agent) noteYanked(s *session, name string, c *ComponentState) {
	if c.InstalledRelease == nil {
		return
	}
	tf, err := s.lookup(c.InstalledRelease.Path)
	if err != nil || tf.Custom == nil {
		return
	}
	meta, err := repo.ParseRelease(tf.Custom)
	if err != nil || !meta.Yanked {
		a.resolve(name, NoteYanked)
		return
	}
	a.raise(NoteYanked, SeverityWarning, name, c.Installed, fmt.Sprintf("the installed %s %s was withdrawn by its publisher (%s); the agent installs the release the channel names when there is one", name, c.Installed, orNone(meta.YankReason)))
}

// Pin holds a component on a version (which may be older than the
// installed one) until Unpin.
func (a *Agent) Pin(component, version string) error {
	if _, err := a.selectComponents(component); err != nil || component == "" {
		return usagef("--component: give one of %v", a.cfg.Components)
	}
	if _, err := repo.ParseVersion(version); err != nil {
		return usagef("--version: %v", err)
	}
	st, err := a.loadState()
	if err != nil {
		return err
	}
	st.Components[component].Pinned = version
	if err := a.saveState(st); err != nil {
		return err
	}
	a.audit(AuditEvent{Event: EventPinned, Component: component, Version: version})
	return nil
}

// Unpin lets a component follow its channel again.
func (a *Agent) Unpin(component string) error {
	if _, err := a.selectComponents(component); err != nil || component == "" {
		return usagef("--component: give one of %v", a.cfg.Components)
	}
	st, err := a.loadState()
	if err != nil {
		return err
	}
	st.Components[component].Pinned = ""
	if err := a.saveState(st); err != nil {
		return err
	}
	a.audit(AuditEvent{Event: EventUnpinned, Component: component})
	return nil
}

// Unpublished refreshes the verified metadata and looks each configured
// component's channel up, changing no component's state: one warning for
// each the repository has no release of on this PC's platform and channel
// (bcagent init says them at once, so a misspelt name is seen then). A
// repository that cannot be reached, or does not verify against the
// trusted root, is the error.
func (a *Agent) Unpublished(ctx context.Context) ([]string, error) {
	s, err := a.refresh(ctx)
	if err == nil {
		var out []string
		for _, name := range a.cfg.Components {
			_, none, cerr := a.channelRelease(ctx, s, name)
			if cerr != nil {
				err = fmt.Errorf("component %s: %w", name, cerr)
				break
			}
			if none != nil && !none.soft {
				out = append(out, none.why)
			}
		}
		if err == nil {
			return out, nil
		}
	}
	if isNetwork(err) {
		return nil, unreachable(a.cfg.RepositoryURL, err)
	}
	return nil, err
}
