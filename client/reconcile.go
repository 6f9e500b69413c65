package client

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/beckmanconnect/bcupdate/repo"
)

// reconcile derives what is active from evidence, not from local files:
// for each installed release, the features its code-signed gate manifest
// declares that are either not gated on this device or granted in the
// verified consent log. A features.json that disagrees (edited by hand,
// or by a local process) is put back, with an audit entry and a
// notification: critical when it listed more than is allowed. It runs when
// the agent opens its state (every command and every service cycle), after
// an interrupted apply has been finished or undone.
//
// A consent log that does not verify grants nothing, so gated features go
// off until it is repaired; installed release metadata that no longer
// matches its gate manifest activates nothing at all.
func (a *Agent) reconcile() error {
	st, err := a.loadState()
	if err != nil {
		return err
	}
	decs, decErr := a.decisions()
	for _, name := range a.cfg.Components {
		c := st.Components[name]
		if c == nil {
			continue
		}
		a.reconcileCurrent(name, c)
		current, readErr := a.ActiveFeatures(name)
		exists := readErr != nil || a.featuresFileExists(name)
		if c.InstalledRelease == nil && !exists {
			continue
		}
		want, why := a.allowedFeatures(st, name, c, decs, decErr)
		have := slices.Clone(current)
		slices.Sort(have)
		if readErr == nil && slices.Equal(have, want) && why == "" {
			continue
		}
		if readErr == nil && slices.Equal(have, want) {
			a.raise(NoteFeaturesRestored, SeverityCritical, name, c.Installed, name+": "+why)
			continue
		}
		extra := readErr != nil
		for _, id := range have {
			extra = extra || !slices.Contains(want, id)
		}
		if err := a.writeFeatures(name, want); err != nil {
			return fmt.Errorf("put back %s: %w", a.featuresPath(name), err)
		}
		listed := "[" + strings.Join(have, ",") + "]"
		if readErr != nil {
			listed = fmt.Sprintf("unreadable (%v)", readErr)
		}
		detail := fmt.Sprintf("features.json listed %s; the verified consent log and signed release metadata allow [%s]; put back", listed, strings.Join(want, ","))
		if why != "" {
			detail += "; " + why
		}
		if decErr != nil {
			detail += "; the consent log does not verify, so no grant in it counts"
		}
		severity := SeverityWarning
		if extra {
			severity = SeverityCritical
		}
		a.audit(AuditEvent{Event: EventFeaturesRestored, Component: name, Version: c.Installed, Detail: detail})
		a.raise(NoteFeaturesRestored, severity, name, c.Installed, fmt.Sprintf("%s: %s", name, detail))
		a.log.Warn("features.json put back", "component", name, "detail", detail)
	}
	return nil
}

// allowedFeatures is what may be active of a component's installed
// release, sorted: the features its code-signed gate manifest declares
// that are not gated on this device or are granted in the verified
// consent log (decs, or decErr if it does not verify). why says why
// nothing is allowed when the release's metadata does not verify.
func (a *Agent) allowedFeatures(st *State, name string, c *ComponentState, decs map[string]ConsentRecord, decErr error) (want []string, why string) {
	want = []string{}
	if rel := c.InstalledRelease; rel != nil && rel.Meta != nil {
		if err := a.verifyGates(rel); err != nil {
			why = fmt.Sprintf("the installed release's metadata in state.json does not verify (%v), so nothing of it is active", err)
		} else {
			gated := a.gatedFeatures(st, rel)
			for _, f := range rel.Meta.Features {
				isGated := slices.ContainsFunc(gated, func(g repo.Feature) bool { return g.ID == f.ID })
				if !isGated || (decErr == nil && decisionFor(decs, name, f) == DecisionGranted) {
					want = append(want, f.ID)
				}
			}
		}
	}
	slices.Sort(want)
	return want, why
}

func (a *Agent) featuresFileExists(component string) bool {
	_, err := os.Lstat(a.featuresPath(component))
	return err == nil
}

// reconcileCurrent puts <install-root>/<component>/current back on the
// installed version if something else moved it (an interrupted apply has
// already been settled by recover).
func (a *Agent) reconcileCurrent(name string, c *ComponentState) {
	if name == SelfComponent || c.Installed == "" {
		return
	}
	compDir := filepath.Join(a.cfg.InstallRoot, name)
	v, err := CurrentVersion(compDir)
	if err == nil && v == c.Installed {
		return
	}
	found := fmt.Sprintf("%q", v)
	if err != nil {
		found = fmt.Sprintf("unreadable (%v)", err)
	}
	detail := fmt.Sprintf("current pointed at %s, but %s is installed", found, c.Installed)
	if fi, serr := os.Stat(filepath.Join(compDir, c.Installed)); serr == nil && fi.IsDir() {
		if err := switchCurrent(compDir, c.Installed); err != nil {
			detail += fmt.Sprintf("; putting it back failed: %v", err)
		} else {
			detail += "; put back"
		}
	} else {
		detail += "; that version is no longer on disk"
	}
	a.audit(AuditEvent{Event: EventFeaturesRestored, Component: name, Version: c.Installed, Detail: detail})
	a.raise(NoteFeaturesRestored, SeverityCritical, name, c.Installed, name+": "+detail)
	a.log.Warn("current put back", "component", name, "detail", detail)
}
