package client

import (
	"fmt"
	"time"
)

// Health is the agent's verdict on itself, for people and for monitoring
// (bcagent status exits with it, docs/design.md): it never says ok when it
// cannot vouch for what it reports.
type Health string

// Verdicts, from best to worst for the exit code's order (status exits 0,
// 4, 1 or 3).
const (
	// HealthOK: the last check succeeded recently (or, on a PC that lives
	// on bundles, the last import's window is open) and every component is
	// up to date, available, staged or held by a pin.
	HealthOK Health = "ok"
	// HealthAwaiting: all is well, but a release waits for a person to
	// authorize its features (exit 4).
	HealthAwaiting Health = "awaiting-authorization"
	// HealthAttention: something needs a person: no successful check yet
	// or not for too long, the last check failed, the last bundle's window
	// is over (on a PC that lives on bundles), a component failed,
	// has no release or is withdrawn, the state needs repair (exit 1).
	HealthAttention Health = "attention"
	// HealthVerification: a critical notification is active (an update or
	// the repository's metadata failed verification, expired metadata, a
	// damaged log): possibly an attack (exit 3).
	HealthVerification Health = "verification-failure"
)

// staleAfter is how many poll intervals may pass after the last
// successful check before status says the agent is not keeping up (the
// service is stopped, or the repository has been unreachable for long).
const staleAfter = 3

// assess sets r's Health, Problems and Alerts from the state, the active
// notifications and the warnings already in r, as of now.
func (a *Agent) assess(r *StatusReport, st *State, now time.Time) {
	r.LastCheck = a.lastCheck()
	worst := HealthOK
	raise := func(h Health, format string, args ...any) {
		if rank(h) > rank(worst) {
			worst = h
		}
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
	lc := r.LastCheck
	// An offline PC's freshness is its last import (bundle_status.go):
	// while that is more recent than the last successful check, no check
	// and an unreachable repository are not problems inside the bundle's
	// window, and its end is one.
	li := a.lastImport()
	offline, open := importFreshness(li, lc, now)
	if li != nil {
		li.Expired = !now.Before(li.Expires)
		r.LastImport = li
	}
	if offline && !open {
		raise(HealthAttention, "%s", expiredBundleProblem(li))
	}
	switch {
	case lc == nil && offline:
	case lc == nil:
		raise(HealthAttention, "no check of the repository has succeeded yet: run bcagent check (or start the service, bcagent run)")
	case !lc.OK && lc.Failure == CheckVerification && a.hasCritical():
		worst = HealthVerification // the critical notification below says it
	case !lc.OK && lc.Failure == CheckVerification:
		raise(HealthVerification, "the last check, at %s, failed verification (this may be an attack; nothing was changed): %s", stamp(lc.At), lc.Error)
	case !lc.OK && lc.Failure == CheckUnreachable && offline:
		// Expected on a PC that lives on bundles.
	case !lc.OK:
		raise(HealthAttention, "the last check, at %s, failed: %s", stamp(lc.At), lc.Error)
	}
	switch {
	case offline:
	case lc != nil && !lc.LastSuccess.IsZero():
		if limit := staleAfter * a.cfg.Interval(); now.Sub(lc.LastSuccess) > limit {
			raise(HealthAttention, "the last successful check was at %s, more than %d poll intervals (%s) ago: is the service running (bcagent run)?", stamp(lc.LastSuccess), staleAfter, limit)
		}
	case lc != nil:
		raise(HealthAttention, "no check of the repository has succeeded yet")
	}
	notes, err := a.Notifications()
	if err != nil {
		raise(HealthAttention, "notifications.json cannot be read: %v", err)
	}
	for _, n := range notes {
		switch {
		case n.Severity == SeverityCritical:
			r.Alerts = append(r.Alerts, n)
			raise(HealthVerification, "%s", n.Message)
		case n.Kind == NoteYanked || n.Kind == NoteMetadataExpiring || n.Kind == NoteStateRecovered || n.Kind == NoteFleetRevoked:
			r.Alerts = append(r.Alerts, n)
			raise(HealthAttention, "%s", n.Message)
		}
	}
	for i := range r.Components {
		cs := &r.Components[i]
		c := st.Components[cs.Name]
		if c == nil {
			continue
		}
		cs.Why = why(cs.Name, c)
		switch c.State {
		case StateFailed, StateNoRelease:
			raise(HealthAttention, "%s: %s", cs.Name, cs.Why)
		case StateAwaitingAuthorization:
			raise(HealthAwaiting, "%s: %s", cs.Name, cs.Why)
		case StateNew:
			if lc != nil && lc.OK {
				raise(HealthAttention, "%s: not checked yet (added since the last check): run bcagent check", cs.Name)
			}
		}
	}
	for _, w := range r.Warnings {
		raise(HealthAttention, "%s", w)
	}
	r.Health = worst
}

// rank orders verdicts for the worst one to win.
func rank(h Health) int {
	switch h {
	case HealthAwaiting:
		return 1
	case HealthAttention:
		return 2
	case HealthVerification:
		return 3
	}
	return 0
}

// why says why a component is failed, without a release, waiting or held
// ("" when nothing needs saying).
func why(name string, c *ComponentState) string {
	switch c.State {
	case StateFailed:
		s := orNone(c.LastError)
		if c.Failed != nil {
			s += fmt.Sprintf("; %s is held back until a newer release is published", c.Failed.Version)
		}
		return s
	case StateNoRelease:
		return c.Unpublished
	case StateAwaitingAuthorization:
		v := "a release"
		if c.Staged != nil {
			v = c.Staged.Version
		}
		return fmt.Sprintf("%s is staged and waits for a person to authorize its features (bcagent apply --component %s)", v, name)
	}
	if c.Pinned != "" {
		return fmt.Sprintf("held on %s by a pin (bcagent unpin --component %s to follow the channel)", c.Pinned, name)
	}
	return ""
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// hasCritical says whether a critical notification is active.
func (a *Agent) hasCritical() bool {
	notes, _ := a.Notifications()
	for _, n := range notes {
		if n.Severity == SeverityCritical {
			return true
		}
	}
	return false
}
