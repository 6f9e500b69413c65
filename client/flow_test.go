package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/repo"
)

// TestFlowInstallUpgradeRollback: check, stage and apply of plain archive
// releases, an upgrade, a rollback by hand (and the release left is not
// offered again), status and the logs along the way.
func TestFlowInstallUpgradeRollback(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)

	// Nothing published: check finds nothing, status says so.
	var rep *CheckReport
	if err := e.do(func(a *Agent) error { var err error; rep, err = a.Check(context.Background()); return err }); err != nil {
		t.Fatal(err)
	}
	if rep == nil {
		t.Fatal("no report")
	}
	if c := e.componentState(); c.Available != nil || c.Installed != "" {
		t.Fatalf("nothing published, yet state %+v", c)
	}

	e.publish("1.0.0")
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	c := e.componentState()
	if c.Available == nil || c.Available.Version != "1.0.0" || c.State != StateUpdateAvailable {
		t.Fatalf("after check: %+v", c)
	}
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	c = e.componentState()
	if c.Staged == nil || c.Staged.Version != "1.0.0" || c.State != StateStaged {
		t.Fatalf("after stage: %+v", c)
	}
	if _, err := os.Stat(c.Staged.File); err != nil {
		t.Fatalf("staged file: %v", err)
	}
	if err := e.apply(ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("current %q", got)
	}
	b, err := os.ReadFile(filepath.Join(e.installDir(), flowComp, "1.0.0", "VERSION"))
	if err != nil || string(b) != "1.0.0\n" {
		t.Fatalf("unpacked VERSION %q %v", b, err)
	}
	if st := e.statusOfComp(); st.Installed == nil || *st.Installed != "1.0.0" || st.State != StateUpToDate {
		t.Fatalf("status %+v", st)
	}

	// Applying again with nothing staged changes nothing.
	if err := e.apply(ApplyOptions{}); err != nil {
		t.Fatal(err)
	}

	e.publish("1.1.0")
	e.install("1.1.0")
	c = e.componentState()
	if c.Installed != "1.1.0" || c.Previous != "1.0.0" {
		t.Fatalf("after upgrade: %+v", c)
	}

	// Rollback refuses an unknown component and no component.
	e.do(func(a *Agent) error {
		if _, err := a.Rollback(context.Background(), ""); err == nil {
			t.Error("rollback without a component accepted")
		}
		if _, err := a.Rollback(context.Background(), "other"); err == nil {
			t.Error("rollback of an unknown component accepted")
		}
		return nil
	})
	if err := e.do(func(a *Agent) error { _, err := a.Rollback(context.Background(), flowComp); return err }); err != nil {
		t.Fatal(err)
	}
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("after rollback current %q", got)
	}
	c = e.componentState()
	if c.Installed != "1.0.0" || c.Previous != "1.1.0" || c.Failed == nil || c.Failed.Version != "1.1.0" {
		t.Fatalf("after rollback: %+v", c)
	}
	// The release rolled back from is not offered again.
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if c := e.componentState(); c.Available != nil && c.Available.Version == "1.1.0" {
		t.Fatalf("rolled-back release offered again: %+v", c.Available)
	}

	// A second rollback goes back to 1.1.0; then the previous version is
	// removed from disk and rollback refuses.
	if err := e.do(func(a *Agent) error { _, err := a.Rollback(context.Background(), flowComp); return err }); err != nil {
		t.Fatal(err)
	}
	if got := e.current(); got != "1.1.0" {
		t.Fatalf("after second rollback current %q", got)
	}
	if err := os.RemoveAll(filepath.Join(e.installDir(), flowComp, "1.0.0")); err != nil {
		t.Fatal(err)
	}
	err = e.do(func(a *Agent) error { _, err := a.Rollback(context.Background(), flowComp); return err })
	if err == nil || !strings.Contains(err.Error(), "no longer on disk") {
		t.Fatalf("rollback to a removed version: %v", err)
	}

	// The audit log verifies and tells the story.
	e.do(func(a *Agent) error {
		rep, err := a.VerifyLogs()
		if err != nil {
			t.Fatal(err)
		}
		if rep.AuditEntries == 0 {
			t.Error("empty audit log")
		}
		au, _, err := a.ExportLogs()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []EventKind{EventUpdateAvailable, EventStaged, EventInstalled, EventRollback} {
			if !flowAuditHas(au, k) {
				t.Errorf("audit log has no %s", k)
			}
		}
		for _, le := range au {
			if DescribeEntry(le) == "" {
				t.Errorf("entry %d has no description", le.Seq)
			}
		}
		return nil
	})
}

// TestFlowRollbackWithoutPrevious: a first install has nothing to go back to.
func TestFlowRollbackWithoutPrevious(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	e.install("1.0.0")
	err := e.do(func(a *Agent) error { _, err := a.Rollback(context.Background(), flowComp); return err })
	if err == nil || !strings.Contains(err.Error(), "no previous version") {
		t.Fatalf("rollback without previous: %v", err)
	}
}

// TestFlowPinUnpin: a pinned component is held on its version (and taken
// to an older one), unpinned it follows the channel again.
func TestFlowPinUnpin(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	e.install("1.0.0")
	e.publish("1.1.0")

	e.do(func(a *Agent) error {
		if err := a.Pin("other", "1.0.0"); err == nil {
			t.Error("pin of an unknown component accepted")
		}
		if err := a.Pin(flowComp, "not a version"); err == nil {
			t.Error("pin to a bad version accepted")
		}
		return nil
	})
	if err := e.do(func(a *Agent) error { return a.Pin(flowComp, "1.0.0") }); err != nil {
		t.Fatal(err)
	}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	c := e.componentState()
	if c.Pinned != "1.0.0" {
		t.Fatalf("pin not recorded: %+v", c)
	}
	if c.Available != nil && c.Available.Version == "1.1.0" {
		t.Fatalf("pinned, yet 1.1.0 offered")
	}
	if st := e.statusOfComp(); st.Pinned != "1.0.0" {
		t.Fatalf("status pinned %q", st.Pinned)
	}

	// Unpinned: 1.1.0 is offered and installs.
	if err := e.do(func(a *Agent) error { return a.Unpin(flowComp) }); err != nil {
		t.Fatal(err)
	}
	e.install("1.1.0")

	// Pinned to the older version: check offers it, apply goes back.
	if err := e.do(func(a *Agent) error { return a.Pin(flowComp, "1.0.0") }); err != nil {
		t.Fatal(err)
	}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if c := e.componentState(); c.Available == nil || c.Available.Version != "1.0.0" {
		t.Fatalf("pinned to 1.0.0 from 1.1.0: available %+v", c.Available)
	}
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	if err := e.apply(ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("pinned apply: current %q", got)
	}

	// A pin to a version that is not published offers nothing.
	if err := e.do(func(a *Agent) error { return a.Pin(flowComp, "9.9.9") }); err != nil {
		t.Fatal(err)
	}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if c := e.componentState(); c.Available != nil {
		t.Fatalf("pin to an unpublished version offers %+v", c.Available)
	}
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("pinned check changed current to %q", got)
	}
	e.do(func(a *Agent) error {
		au, _, err := a.ExportLogs()
		if err != nil {
			t.Fatal(err)
		}
		if !flowAuditHas(au, EventPinned) || !flowAuditHas(au, EventUnpinned) {
			t.Error("pin/unpin not audited")
		}
		return nil
	})
}

var flowGated = repo.Feature{
	ID:          "remote-file-transfer",
	Title:       "File transfer during remote support sessions",
	Description: "Lets a support representative copy files to and from this PC during a session you approve.",
	Consent:     repo.ConsentRequired,
}

var flowFree = repo.Feature{
	ID:          "dark-mode",
	Title:       "Dark mode",
	Description: "A darker colour scheme.",
	Consent:     repo.ConsentNone,
}

// flowPrompter answers the prompt.
type flowPrompter struct {
	granted bool
	by      string
	err     error
	asked   []string
}

func (p *flowPrompter) Confirm(ctx context.Context, req ConsentRequest) (bool, string, error) {
	p.asked = append(p.asked, req.Feature.ID)
	if req.Text != FeatureText(req.Feature) {
		return false, "", errors.New("prompt text is not the feature text")
	}
	return p.granted, p.by, p.err
}

// TestFlowGatedFeatureConsent: a release with a feature needing consent
// waits for a person; apply with --authorize installs it and activates the
// feature; consent list shows it; revoke turns it off at once; a release
// declined installs with the feature off.
func TestFlowGatedFeatureConsent(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0", flowGated, flowFree)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if err := e.stage(); !errors.Is(err, ErrAuthorizationRequired) {
		t.Fatalf("stage of a gated release: %v, want ErrAuthorizationRequired", err)
	}
	err := e.apply(ApplyOptions{})
	if !errors.Is(err, ErrAuthorizationRequired) {
		t.Fatalf("apply of a gated release without a decision: %v", err)
	}
	if !strings.Contains(err.Error(), flowGated.ID) {
		t.Errorf("error does not name the feature: %v", err)
	}
	if got := e.current(); got != "" {
		t.Fatalf("gated release installed without consent: %q", got)
	}
	c := e.componentState()
	if c.State != StateAwaitingAuthorization || c.Staged == nil {
		t.Fatalf("awaiting: %+v", c)
	}
	st := e.statusOfComp()
	if st.State != StateAwaitingAuthorization {
		t.Fatalf("status state %s", st.State)
	}
	pending := false
	for _, f := range st.Features {
		if f.ID == flowGated.ID && f.Consent == ConsentPending && !f.Active {
			pending = true
		}
	}
	if !pending {
		t.Errorf("status features %+v: want %s pending", st.Features, flowGated.ID)
	}
	e.do(func(a *Agent) error {
		list, err := a.Notifications()
		if err != nil {
			t.Fatal(err)
		}
		if !flowHasNote(list, NoteAwaitingAuthorization) {
			t.Errorf("no awaiting-authorization notification in %+v", list)
		}
		return nil
	})

	// Bad decision options are refused before anything happens.
	for _, o := range []ApplyOptions{
		{Authorize: []string{flowGated.ID}},                                           // no --by
		{Authorize: []string{flowGated.ID}, Decline: []string{flowGated.ID}, By: "x"}, // contradiction
		{Authorize: []string{"no-such-feature"}, By: "Dr. Ada"},                       // names nothing gated
		{Authorize: []string{flowFree.ID}, By: "Dr. Ada"},                             // not gated
	} {
		if err := e.apply(o); err == nil || errors.Is(err, ErrAuthorizationRequired) {
			t.Errorf("apply %+v: %v, want a usage error", o, err)
		}
	}
	if got := e.current(); got != "" {
		t.Fatalf("refused apply installed %q", got)
	}

	// A prompt without an answer keeps the release waiting.
	p := &flowPrompter{err: ErrNoAnswer}
	if err := e.apply(ApplyOptions{Prompter: p, Terminal: true}); !errors.Is(err, ErrAuthorizationRequired) {
		t.Fatalf("no answer at the prompt: %v", err)
	}
	if !slices.Contains(p.asked, flowGated.ID) {
		t.Errorf("prompter asked %v", p.asked)
	}
	// A prompt answered without a name is refused.
	if err := e.apply(ApplyOptions{Prompter: &flowPrompter{granted: true}}); err == nil || errors.Is(err, ErrAuthorizationRequired) {
		t.Fatalf("an answer without a name: %v", err)
	}

	// Authorized on the command line: installed with both features active.
	if err := e.apply(ApplyOptions{Authorize: []string{flowGated.ID}, By: "Dr. Ada"}); err != nil {
		t.Fatal(err)
	}
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("authorized apply: current %q", got)
	}
	var active []string
	e.do(func(a *Agent) error { active, err = a.ActiveFeatures(flowComp); return err })
	if !slices.Contains(active, flowGated.ID) || !slices.Contains(active, flowFree.ID) {
		t.Fatalf("active features %v", active)
	}
	e.do(func(a *Agent) error {
		list, err := a.ConsentList()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Feature != flowGated.ID || list[0].Decision != DecisionGranted || !list[0].Active || list[0].By != "Dr. Ada" {
			t.Fatalf("consent list %+v", list)
		}
		if list[0].TextSHA256 != FeatureTextSHA256(flowGated) {
			t.Errorf("decision text hash %s", list[0].TextSHA256)
		}
		return nil
	})
	st = e.statusOfComp()
	granted := false
	for _, f := range st.Features {
		granted = granted || (f.ID == flowGated.ID && f.Consent == ConsentGranted && f.Active)
	}
	if !granted {
		t.Errorf("status features after grant %+v", st.Features)
	}

	// Revoke: refused without a name, for an unknown feature or component;
	// then recorded, and the feature is off at once.
	e.do(func(a *Agent) error {
		if err := a.Revoke(flowComp, flowGated.ID, "", false); err == nil {
			t.Error("revoke without --by accepted")
		}
		if err := a.Revoke(flowComp, "no-such-feature", "Dr. Ada", false); err == nil {
			t.Error("revoke of an unknown feature accepted")
		}
		if err := a.Revoke("other", flowGated.ID, "Dr. Ada", false); err == nil {
			t.Error("revoke for an unknown component accepted")
		}
		return nil
	})
	if err := e.do(func(a *Agent) error { return a.Revoke(flowComp, flowGated.ID, "Dr. Ada", true) }); err != nil {
		t.Fatal(err)
	}
	e.do(func(a *Agent) error {
		active, err := a.ActiveFeatures(flowComp)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(active, flowGated.ID) || !slices.Contains(active, flowFree.ID) {
			t.Fatalf("after revoke active %v", active)
		}
		list, err := a.ConsentList()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Decision != DecisionRevoked || list[0].Active {
			t.Fatalf("consent list after revoke %+v", list)
		}
		_, co, err := a.ExportLogs()
		if err != nil {
			t.Fatal(err)
		}
		if len(co) != 2 {
			t.Errorf("consent log has %d entries, want 2", len(co))
		}
		return nil
	})
	// Reopening (reconcile) keeps the revoked feature off.
	e.do(func(a *Agent) error {
		active, _ := a.ActiveFeatures(flowComp)
		if slices.Contains(active, flowGated.ID) {
			t.Errorf("revoked feature active again after reopen: %v", active)
		}
		return nil
	})

	// A revocation is a standing decision on that text: the next release
	// installs with the feature off and asks nobody.
	e.publish("1.1.0", flowGated, flowFree)
	p = &flowPrompter{granted: true, by: "Dr. Bea"}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if err := e.stage(); err != nil {
		t.Fatalf("stage after revoke: %v", err)
	}
	if err := e.apply(ApplyOptions{Prompter: p, Terminal: true}); err != nil {
		t.Fatalf("apply after revoke: %v", err)
	}
	if got := e.current(); got != "1.1.0" || len(p.asked) != 0 {
		t.Fatalf("after revoke: current %q, asked %v", got, p.asked)
	}
	e.do(func(a *Agent) error {
		active, _ := a.ActiveFeatures(flowComp)
		if slices.Contains(active, flowGated.ID) {
			t.Errorf("revoked feature active in the next release: %v", active)
		}
		return nil
	})

	// The feature's text changes: the decision no longer counts and the
	// person is asked again; declined at the prompt, it installs off.
	changed := flowGated
	changed.Description += " Sessions are recorded."
	e.publish("1.2.0", changed, flowFree)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if err := e.stage(); !errors.Is(err, ErrAuthorizationRequired) {
		t.Fatalf("stage of a release whose feature text changed: %v", err)
	}
	p = &flowPrompter{granted: false, by: "Dr. Bea"}
	if err := e.apply(ApplyOptions{Prompter: p, Terminal: true}); err != nil {
		t.Fatalf("declined at the prompt: %v", err)
	}
	if got := e.current(); got != "1.2.0" || !slices.Contains(p.asked, flowGated.ID) {
		t.Fatalf("declined release: current %q, asked %v", got, p.asked)
	}
	e.do(func(a *Agent) error {
		active, _ := a.ActiveFeatures(flowComp)
		if slices.Contains(active, flowGated.ID) {
			t.Errorf("declined feature active: %v", active)
		}
		list, err := a.ConsentList()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Decision != DecisionDeclined || list[0].Method != MethodTerminal || list[0].By != "Dr. Bea" ||
			list[0].TextSHA256 != FeatureTextSHA256(changed) {
			t.Errorf("consent list after decline %+v", list)
		}
		return nil
	})

	// Authorizing the installed release's feature later, without a new
	// release, turns it on.
	if err := e.apply(ApplyOptions{Authorize: []string{flowGated.ID}, By: "Dr. Ada"}); err != nil {
		t.Fatalf("authorize installed: %v", err)
	}
	e.do(func(a *Agent) error {
		active, _ := a.ActiveFeatures(flowComp)
		if !slices.Contains(active, flowGated.ID) {
			t.Errorf("authorized installed feature not active: %v", active)
		}
		return nil
	})

	// The read-only view sees the same.
	v, err := OpenReadOnly(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	list, err := v.ConsentList()
	if err != nil || len(list) != 1 || list[0].Decision != DecisionGranted {
		t.Fatalf("view consent list %+v %v", list, err)
	}
	if v.Config().DeviceID != "INST-0042" {
		t.Errorf("view config %+v", v.Config())
	}
}
