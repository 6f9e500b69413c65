package client

import (
	"slices"
	"time"

	"github.com/beckmanconnect/bcupdate/repo"
)

// StatusReport is `bcagent status --json` (DESIGN.md).
type StatusReport struct {
	Device     DeviceStatus      `json:"device"`
	Repository RepositoryStatus  `json:"repository"`
	Components []ComponentStatus `json:"components"`
	// Activity (View.Status only) says whether an agent holds the state
	// directory and what it is doing.
	Activity *ActivityStatus `json:"activity,omitempty"`
	// Warnings (View.Status only) name what the next agent to open the
	// state directory will repair (a damaged state.json, an interrupted
	// install).
	Warnings []string `json:"warnings,omitempty"`
	// LastCheck is how the last check ended (null: none yet).
	LastCheck *CheckResult `json:"last_check"`
	// LastImport is the last bundle that verified (absent: none was ever
	// imported), bundle_status.go: while it is more recent than the last
	// successful check and its window is open, it is the PC's freshness.
	LastImport *ImportResult `json:"last_import,omitempty"`
	// Health is the verdict (health.go); Problems say, one line each,
	// what keeps it from ok; Alerts are the active notifications behind
	// them (critical ones, a withdrawn release, expiring metadata).
	Health   Health         `json:"health"`
	Problems []string       `json:"problems"`
	Alerts   []Notification `json:"alerts"`
	// Fleet is the enrollment with the fleet service (absent: not
	// enrolled), docs/fleet.md.
	Fleet *FleetStatus `json:"fleet,omitempty"`
}

// DeviceStatus identifies the PC.
type DeviceStatus struct {
	ID    string `json:"id"`
	Model string `json:"model"`
	PHI   bool   `json:"phi"`
}

// RepositoryStatus is what the last successful check saw.
type RepositoryStatus struct {
	URL              string     `json:"url"`
	TimestampVersion int64      `json:"timestamp_version"`
	Expires          *time.Time `json:"expires"`
	// Mirrors are the configured repository URLs in the order they are
	// tried, when there is more than one; Mirror is which one the last
	// check or stage used and which it skipped, and why (mirror.go).
	Mirrors []string      `json:"mirrors,omitempty"`
	Mirror  *MirrorReport `json:"mirror,omitempty"`
}

// ComponentStatus is one component's versions and state.
type ComponentStatus struct {
	Name      string          `json:"name"`
	Installed *string         `json:"installed"`
	Staged    *string         `json:"staged"`
	Available *string         `json:"available"`
	State     StateName       `json:"state"`
	Features  []FeatureStatus `json:"features"`
	LastError string          `json:"last_error,omitempty"`
	Pinned    string          `json:"pinned,omitempty"`
	// Why says why the component is failed, has no release, waits or is
	// held by a pin ("" otherwise).
	Why string `json:"why,omitempty"`
	// ReleaseUnknown: the installed version's release metadata (and so
	// its features) is unknown, after state.json was rebuilt from the
	// install tree, until a check re-learns it.
	ReleaseUnknown bool `json:"installed_release_unknown,omitempty"`
}

// FeatureStatus is one feature of the installed or pending release.
type FeatureStatus struct {
	ID      string       `json:"id"`
	Active  bool         `json:"active"`
	Consent ConsentState `json:"consent"`
}

// Status reports the agent's local view; it does not touch the network.
// `bcagent status` uses View.Status, which needs no lock.
func (a *Agent) Status() (*StatusReport, error) {
	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	r := a.statusOf(st)
	a.assess(r, st, time.Now())
	r.Fleet = a.fleetStatus()
	return r, nil
}

// statusOf makes the report of a state; it reads the consent log and
// features.json and writes nothing.
func (a *Agent) statusOf(st *State) *StatusReport {
	r := &StatusReport{
		Device:     DeviceStatus{ID: a.cfg.DeviceID, Model: a.cfg.DeviceModel, PHI: a.isPHIDevice(st)},
		Repository: RepositoryStatus{URL: a.cfg.RepositoryURL, TimestampVersion: st.Repository.TimestampVersion},
		Problems:   []string{},
		Alerts:     []Notification{},
	}
	if !st.Repository.Expires.IsZero() {
		e := st.Repository.Expires
		r.Repository.Expires = &e
	}
	if urls := a.cfg.RepositoryURLs(); len(urls) > 1 {
		r.Repository.Mirrors = urls
		r.Repository.Mirror = a.lastMirrors()
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	for _, name := range a.cfg.Components {
		c := st.Components[name]
		cs := ComponentStatus{Name: name, Installed: opt(c.Installed), State: c.State.shown(), Features: []FeatureStatus{}, LastError: c.LastError, Pinned: c.Pinned, ReleaseUnknown: c.ReleaseUnknown()}
		pending := c.Available
		if c.Staged != nil {
			cs.Staged = opt(c.Staged.Version)
			pending = c.Staged
		}
		if c.Available != nil {
			cs.Available = opt(c.Available.Version)
		}
		rel, installed := pending, false
		if rel == nil {
			rel, installed = c.InstalledRelease, true
		}
		if rel != nil && rel.Meta != nil {
			var active []string
			if installed {
				active, _ = a.ActiveFeatures(name)
			}
			decs, derr := a.decisions()
			gated := a.gatedFeatures(st, rel)
			for _, f := range rel.Meta.Features {
				fs := FeatureStatus{ID: f.ID, Active: slices.Contains(active, f.ID), Consent: ConsentNotRequired}
				if slices.ContainsFunc(gated, func(g repo.Feature) bool { return g.ID == f.ID }) {
					fs.Consent = ConsentPending
					if derr == nil {
						switch decisionFor(decs, name, f) {
						case DecisionGranted:
							fs.Consent = ConsentGranted
						case DecisionDeclined:
							fs.Consent = ConsentDeclined
						case DecisionRevoked:
							fs.Consent = ConsentRevoked
						}
					}
				}
				cs.Features = append(cs.Features, fs)
			}
		}
		r.Components = append(r.Components, cs)
	}
	return r
}
