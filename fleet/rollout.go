package fleet

import (
	"time"
)

// RolloutStatus is how a release is doing across the devices that carry
// its component: each device counted once, in the first of silent,
// installed, rolled back (by hand), failed (rolled back after its health
// check or install failed), awaiting authorization, staged, or pending
// (not there yet: outside the staged rollout, or between polls).
type RolloutStatus struct {
	Component  string `json:"component"`
	Version    string `json:"version"`
	Targeted   int    `json:"targeted"`
	Installed  int    `json:"installed"`
	Staged     int    `json:"staged"`
	Awaiting   int    `json:"awaiting_authorization"`
	Failed     int    `json:"failed"`
	RolledBack int    `json:"rolled_back"`
	Silent     int    `json:"silent"`
	Pending    int    `json:"pending"`
	// FailureRate is failed and rolled back over those that tried it
	// (installed, failed, rolled back) and are reporting: 0 to 1.
	FailureRate float64 `json:"failure_rate"`
}

// Rollout counts devices for component at version, as of now.
func Rollout(devices []Device, component, version string, now time.Time) RolloutStatus {
	r := RolloutStatus{Component: component, Version: version}
	for i := range devices {
		d := &devices[i]
		if d.Revoked != nil {
			continue
		}
		for _, c := range d.State.Components {
			if c.Name != component {
				continue
			}
			r.Targeted++
			switch {
			case !d.Online(now):
				r.Silent++
			case c.Installed == version && c.State != "failed":
				r.Installed++
			case c.State == "failed" && c.Failed == version && c.ByHand:
				r.RolledBack++
			case c.State == "failed" && c.Failed == version:
				r.Failed++
			case c.Staged == version && c.State == "awaiting-authorization":
				r.Awaiting++
			case c.Staged == version:
				r.Staged++
			default:
				r.Pending++
			}
		}
	}
	if tried := r.Installed + r.Failed + r.RolledBack; tried > 0 {
		r.FailureRate = float64(r.Failed+r.RolledBack) / float64(tried)
	}
	return r
}
