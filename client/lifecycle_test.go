package client

import (
	"errors"
	"slices"
	"testing"
)

// TestLifecycleTable walks every transition in every state: an allowed one
// moves the component to the rule's state and records exactly what the
// rule says (audit entry when the state changed, notifications raised and
// resolved); a refused one fails with errRefusedTransition and changes and
// records nothing.
func TestLifecycleTable(t *testing.T) {
	want := map[Transition]struct {
		from []StateName
		to   StateName // for derived rules: with the facts set below
	}{
		Found:            {[]StateName{StateNew, StateUpToDate, StateUpdateAvailable, StateFailed, StateNoRelease}, StateUpdateAvailable},
		Unoffered:        {[]StateName{StateNew, StateUpToDate, StateUpdateAvailable, StateFailed, StateNoRelease}, StateUpToDate},
		Unpublished:      {[]StateName{StateNew, StateUpToDate, StateUpdateAvailable, StateFailed, StateNoRelease}, StateNoRelease},
		Dropped:          {[]StateName{StateStaged, StateAwaitingAuthorization}, StateUpToDate},
		Staged:           {[]StateName{StateUpdateAvailable}, StateStaged},
		Awaiting:         {[]StateName{StateStaged, StateAwaitingAuthorization}, StateAwaitingAuthorization},
		Ready:            {[]StateName{StateAwaitingAuthorization}, StateStaged},
		Installed:        {[]StateName{StateStaged, StateAwaitingAuthorization}, StateUpToDate},
		RolledBack:       {[]StateName{StateStaged, StateAwaitingAuthorization}, StateFailed},
		RolledBackByHand: {anyState, StateUpToDate},
	}
	if len(want) != len(lifecycle) {
		t.Fatalf("the test knows %d transitions, the table has %d", len(want), len(lifecycle))
	}
	for tr, w := range want {
		r := lifecycle[tr]
		for _, from := range anyState {
			t.Run(string(tr)+"/from-"+string(from), func(t *testing.T) {
				a := stateAgent(t)
				c := &ComponentState{State: from}
				err := a.transition(testComp, c, tr, occasion{Version: "1.1.0", Message: "m", Detail: "d"})
				evs, _ := a.auditEvents()
				notes := notes(t, a)
				if !slices.Contains(w.from, from) {
					if !errors.Is(err, errRefusedTransition) {
						t.Fatalf("want a refusal, got %v", err)
					}
					if c.State != from || len(evs) != 0 || len(notes) != 0 {
						t.Fatalf("a refused transition changed or recorded something: %q %v %v", c.State, evs, notes)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if c.State != w.to {
					t.Fatalf("state %q, want %q", c.State, w.to)
				}
				changed := from != w.to
				if gotAudit := slices.ContainsFunc(evs, func(e AuditEvent) bool { return e.Event == r.event }); r.event != "" && gotAudit != changed {
					t.Errorf("audit entry %s written %v, want %v (state changed: %v)", r.event, gotAudit, changed, changed)
				}
				if r.event == "" && len(evs) != 0 {
					t.Errorf("audit entries %v, want none", evs)
				}
				if r.note != "" && !hasNote(notes, r.note) {
					t.Errorf("no %s notification: %v", r.note, notes)
				}
			})
		}
	}
}

// TestLifecycleRecords: the occasion's options and the resolved
// notifications.
func TestLifecycleRecords(t *testing.T) {
	a := stateAgent(t)
	c := &ComponentState{State: StateUpdateAvailable}
	// The same state again: no audit entry unless Again.
	if err := a.transition(testComp, c, Found, occasion{Version: "1.1.0", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	if auditHas(t, a, EventUpdateAvailable) {
		t.Fatal("found in update-available without Again wrote an audit entry")
	}
	if err := a.transition(testComp, c, Found, occasion{Version: "1.2.0", Message: "m2", Again: true}); err != nil {
		t.Fatal(err)
	}
	if !auditHas(t, a, EventUpdateAvailable) {
		t.Fatal("found with Again wrote no audit entry")
	}
	// Staged resolves update-available; Quiet raises nothing.
	if err := a.transition(testComp, c, Staged, occasion{Version: "1.2.0", Quiet: true}); err != nil {
		t.Fatal(err)
	}
	if ns := notes(t, a); hasNote(ns, NoteUpdateAvailable) || hasNote(ns, NoteStaged) {
		t.Fatalf("after a quiet staged: %v", ns)
	}
	if err := a.transition(testComp, c, Awaiting, occasion{Version: "1.2.0", Message: "ask"}); err != nil {
		t.Fatal(err)
	}
	if err := a.transition(testComp, c, Ready, occasion{Version: "1.2.0", Message: "ready"}); err != nil {
		t.Fatal(err)
	}
	if ns := notes(t, a); hasNote(ns, NoteAwaitingAuthorization) || !hasNote(ns, NoteStaged) {
		t.Fatalf("after ready: %v", ns)
	}
	// Derived: a held release keeps a component failed when nothing is
	// offered; a newer one makes it update-available.
	held := &ComponentState{State: StateFailed, Failed: testRelease(testComp, "1.2.0")}
	if err := a.transition(testComp, held, Unoffered, occasion{}); err != nil || held.State != StateFailed {
		t.Fatalf("unoffered with a held release: %q, %v", held.State, err)
	}
	held.Failed, held.Available = nil, testRelease(testComp, "1.3.0")
	if err := a.transition(testComp, held, Found, occasion{Version: "1.3.0"}); err != nil || held.State != StateUpdateAvailable {
		t.Fatalf("found after a held release: %q, %v", held.State, err)
	}
}

func TestDeriveState(t *testing.T) {
	rel := testRelease(testComp, "1.1.0")
	for _, tc := range []struct {
		c    ComponentState
		want StateName
	}{
		{ComponentState{}, StateUpToDate},
		{ComponentState{Available: rel}, StateUpdateAvailable},
		{ComponentState{Available: rel, Staged: rel}, StateStaged},
		{ComponentState{Failed: rel}, StateFailed},
		{ComponentState{Failed: rel, Available: rel}, StateUpdateAvailable},
		{ComponentState{Failed: rel, Staged: rel}, StateStaged},
	} {
		if got := deriveState(&tc.c); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c, got, tc.want)
		}
	}
}
