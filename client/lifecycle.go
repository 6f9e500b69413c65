package client

import (
	"errors"
	"fmt"
	"slices"
)

// The component lifecycle.
//
// A component's state (ComponentState.State, docs/formats.md) changes only
// through transition, by one of the rules in lifecycle: what may happen in
// which state, the state it leads to, and what it records. The facts the
// state is derived from (the available, staged and failed releases) are
// set by the caller just before; a rule whose "to" is empty derives the new
// state from them (deriveState). Each transition is recorded once, by
// record: the audit entry, the notifications it raises and resolves, and
// the log line, together.
//
//	transition        from                                    to
//	found             new, up-to-date, update-available,      update-available
//	                  failed, no-release
//	unoffered         new, up-to-date, update-available,      up-to-date, or failed while a
//	                  failed, no-release                      release is held back
//	unpublished       new, up-to-date, update-available,      no-release (a warning: the
//	                  failed, no-release                      repository offers nothing)
//	dropped           staged, awaiting-authorization          derived (the staged copy is gone)
//	staged            update-available                        staged
//	awaiting          staged, awaiting-authorization          awaiting-authorization
//	ready             awaiting-authorization                  staged (every feature decided)
//	installed         staged, awaiting-authorization          up-to-date
//	rolled-back       staged, awaiting-authorization          failed (back on the old version)
//	rolled-back-by-   any                                     derived (the release left is held)
//	hand
//
// Pins, yanks and recovery do not change a component's state by
// themselves: a pin or a yank changes what the next check finds (found or
// unoffered), and recovery at start (journal.go, state.go) settles an
// interrupted install and re-derives every state, as a logged step.

// Transition is something that happens to a component.
type Transition string

// Transitions.
const (
	Found            Transition = "found"
	Unoffered        Transition = "unoffered"
	Unpublished      Transition = "unpublished"
	Dropped          Transition = "dropped"
	Staged           Transition = "staged"
	Awaiting         Transition = "awaiting"
	Ready            Transition = "ready"
	Installed        Transition = "installed"
	RolledBack       Transition = "rolled-back"
	RolledBackByHand Transition = "rolled-back-by-hand"
)

// StateNew is the state of a component no check has looked at yet.
const StateNew StateName = ""

// anyState is every state a component can be in.
var anyState = []StateName{StateNew, StateUpToDate, StateUpdateAvailable, StateStaged, StateAwaitingAuthorization, StateFailed, StateNoRelease}

// offerable are the states a check may find a component in when nothing
// is staged: it may then find a release, none, or that none is published.
var offerable = []StateName{StateNew, StateUpToDate, StateUpdateAvailable, StateFailed, StateNoRelease}

// rule is one transition: the states it may happen in, the one it leads
// to ("": derived from the facts), and what it records.
type rule struct {
	from     []StateName
	to       StateName
	event    EventKind  // audit entry ("": none)
	note     NoteKind   // notification raised ("": none)
	severity Severity   // of note
	resolve  []NoteKind // notifications it clears
	log      string     // the log line
}

var lifecycle = map[Transition]rule{
	Found: {
		from: offerable, to: StateUpdateAvailable,
		event: EventUpdateAvailable, note: NoteUpdateAvailable, severity: SeverityInfo,
		resolve: []NoteKind{NoteNoRelease},
		log:     "update available",
	},
	Unoffered: {
		from:    offerable,
		resolve: []NoteKind{NoteUpdateAvailable, NoteNoRelease},
	},
	Unpublished: {
		from: offerable, to: StateNoRelease,
		note: NoteNoRelease, severity: SeverityWarning,
		resolve: []NoteKind{NoteUpdateAvailable},
		log:     "no release in the repository",
	},
	Dropped: {
		from:    []StateName{StateStaged, StateAwaitingAuthorization},
		resolve: []NoteKind{NoteStaged, NoteAwaitingAuthorization},
		log:     "staged copy dropped",
	},
	Staged: {
		from: []StateName{StateUpdateAvailable}, to: StateStaged,
		event: EventStaged, note: NoteStaged, severity: SeverityInfo,
		resolve: []NoteKind{NoteUpdateAvailable, NoteVerificationFailure},
		log:     "staged",
	},
	Awaiting: {
		from: []StateName{StateStaged, StateAwaitingAuthorization}, to: StateAwaitingAuthorization,
		event: EventAwaitingAuthorization, note: NoteAwaitingAuthorization, severity: SeverityWarning,
		resolve: []NoteKind{NoteStaged},
		log:     "awaiting authorization",
	},
	Ready: {
		from: []StateName{StateAwaitingAuthorization}, to: StateStaged,
		note: NoteStaged, severity: SeverityInfo,
		resolve: []NoteKind{NoteAwaitingAuthorization},
	},
	Installed: {
		from: []StateName{StateStaged, StateAwaitingAuthorization}, to: StateUpToDate,
		event: EventInstalled, note: NoteInstalled, severity: SeverityInfo,
		resolve: []NoteKind{NoteUpdateAvailable, NoteStaged, NoteAwaitingAuthorization, NoteFailed, NoteRolledBack, NoteVerificationFailure},
		log:     "installed",
	},
	RolledBack: {
		from: []StateName{StateStaged, StateAwaitingAuthorization}, to: StateFailed,
		event: EventRollback, note: NoteFailed, severity: SeverityWarning,
		resolve: []NoteKind{NoteStaged, NoteAwaitingAuthorization},
		log:     "rolled back",
	},
	RolledBackByHand: {
		from:  anyState,
		event: EventRollback, note: NoteRolledBack, severity: SeverityWarning,
		resolve: []NoteKind{NoteUpdateAvailable, NoteStaged, NoteAwaitingAuthorization},
		log:     "rolled back by hand",
	},
}

// occasion is what a transition records beyond its rule: the version it
// is about, the audit entry's detail, the notification's message.
type occasion struct {
	Version string
	Detail  string
	Message string
	// Again: record the audit entry even though the state stays the same
	// (a check that finds a newer release while one was available).
	Again bool
	// Quiet: raise no notification (a staged release that at once waits
	// for a person raises only that).
	Quiet bool
}

// errRefusedTransition marks a transition that its rule does not allow in
// the component's state: a bug in the agent, never a user error.
var errRefusedTransition = errors.New("transition not allowed")

// transition moves component name by t, whose facts the caller has just
// set on c, and records it. It refuses (and changes nothing) when t may
// not happen in c's state.
func (a *Agent) transition(name string, c *ComponentState, t Transition, o occasion) error {
	r, ok := lifecycle[t]
	if !ok || !slices.Contains(r.from, c.State) {
		a.log.Error("refused transition", "component", name, "transition", t, "state", c.State)
		return fmt.Errorf("%w: %s %s in state %q", errRefusedTransition, name, t, c.State)
	}
	before := c.State
	if r.to != "" {
		c.State = r.to
	} else {
		c.State = deriveState(c)
	}
	a.record(name, r, o, before != c.State || o.Again)
	return nil
}

// record writes what a transition says happened, all of it at once: the
// audit entry (when the state changed, or again is set), the resolved
// and raised notifications, and the log line.
func (a *Agent) record(name string, r rule, o occasion, again bool) {
	if r.event != "" && again {
		a.audit(AuditEvent{Event: r.event, Component: name, Version: o.Version, Detail: o.Detail})
	}
	if len(r.resolve) > 0 {
		a.resolve(name, a.importResolvable(r.resolve)...)
	}
	if r.note != "" && !o.Quiet {
		a.raise(r.note, r.severity, name, o.Version, o.Message)
	}
	if r.log != "" {
		a.log.Info(r.log, "component", name, "version", o.Version)
	}
}

// deriveState is a component's state from its facts alone: failed while a
// release is held back and nothing newer is offered, staged, update
// available, or up to date. (Awaiting authorization also depends on the
// consent log: the Awaiting transition sets it.)
func deriveState(c *ComponentState) StateName {
	switch {
	case c.Failed != nil && c.Available == nil && c.Staged == nil:
		return StateFailed // until a newer release appears
	case c.Staged != nil:
		return StateStaged
	case c.Available != nil:
		return StateUpdateAvailable
	case c.Unpublished != "":
		return StateNoRelease
	default:
		return StateUpToDate
	}
}
