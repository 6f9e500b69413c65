package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeSink records the events written to it.
type fakeSink struct {
	mu     sync.Mutex
	events []sinkEvent
	fail   error
}

type sinkEvent struct {
	Level EventLevel
	ID    uint32
	Msg   string
}

func (s *fakeSink) add(l EventLevel, id uint32, msg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, sinkEvent{l, id, msg})
	return s.fail
}

func (s *fakeSink) Info(id uint32, msg string) error    { return s.add(EventInformation, id, msg) }
func (s *fakeSink) Warning(id uint32, msg string) error { return s.add(EventWarning, id, msg) }
func (s *fakeSink) Error(id uint32, msg string) error   { return s.add(EventError, id, msg) }

var _ EventSink = (*fakeSink)(nil)

// take returns and forgets what was written.
func (s *fakeSink) take() []sinkEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.events
	s.events = nil
	return ev
}

// find is the first event with id, or nil.
func find(evs []sinkEvent, id EventID) *sinkEvent {
	for i := range evs {
		if evs[i].ID == uint32(id) {
			return &evs[i]
		}
	}
	return nil
}

// TestEventIDsPinned: monitoring rules are written against these numbers.
// A renumbering fails here; a new kind gets a new number, an old number is
// never reused.
func TestEventIDsPinned(t *testing.T) {
	notes := map[NoteKind]uint32{
		"update-available": 101, "staged": 102, "awaiting-authorization": 103, "installed": 104, "failed": 105,
		"rolled-back": 106, "metadata-expiring": 107, "metadata-expired": 108, "verification-failure": 109,
		"log-damaged": 110, "repository-unreachable": 111, "yanked": 112, "features-restored": 113,
		"check-failed": 114, "no-release": 115, "state-recovered": 116, "fleet-revoked": 117,
	}
	audits := map[EventKind][2]any{
		"update-available": {201, EventInformation}, "staged": {202, EventInformation},
		"awaiting-authorization": {203, EventWarning}, "installed": {204, EventInformation},
		"failed": {205, EventWarning}, "rollback": {206, EventWarning}, "verification-failure": {209, EventError},
		"features-restored": {213, EventWarning}, "state-recovered": {216, EventWarning}, "fleet-revoked": {217, EventWarning},
		"consent-decision": {220, EventInformation}, "consent-revoked": {221, EventInformation},
		"consent-no-answer": {222, EventInformation}, "policy-accepted": {223, EventInformation},
		"pinned": {224, EventInformation}, "unpinned": {225, EventInformation}, "config-changed": {226, EventInformation},
		"bundle-imported": {227, EventInformation}, "fleet-enrolled": {228, EventInformation},
		"fleet-key-rotated": {229, EventInformation}, "notification-acknowledged": {230, EventWarning},
	}
	for kind, want := range notes {
		for sev, level := range map[Severity]EventLevel{SeverityInfo: EventInformation, SeverityWarning: EventWarning, SeverityCritical: EventError} {
			id, l := NoteEvent(kind, sev)
			if uint32(id) != want || l != level {
				t.Errorf("notification %s (%s) = event %d %s, want %d %s", kind, sev, id, l, want, level)
			}
		}
	}
	if len(noteEventIDs) != len(notes) {
		t.Errorf("%d notification kinds have an event ID, %d are pinned here: pin the new one", len(noteEventIDs), len(notes))
	}
	for kind, want := range audits {
		id, l := AuditEventID(kind)
		if uint32(id) != uint32(want[0].(int)) || l != want[1].(EventLevel) {
			t.Errorf("audit %s = event %d %s, want %d %s", kind, id, l, want[0], want[1])
		}
	}
	if len(auditEventIDs) != len(audits) {
		t.Errorf("%d audit kinds have an event ID, %d are pinned here: pin the new one", len(auditEventIDs), len(audits))
	}
	for id, want := range map[EventID]uint32{EventIDNoteOther: 199, EventIDAuditOther: 299, EventIDServiceStarted: 300,
		EventIDServiceStopped: 301, EventIDServiceFailed: 302, EventIDLogWarning: 310, EventIDLogError: 311} {
		if uint32(id) != want {
			t.Errorf("event ID %d, want %d", id, want)
		}
	}
	// A kind the table does not know still reaches the log.
	if id, l := NoteEvent("brand-new", SeverityWarning); id != EventIDNoteOther || l != EventWarning {
		t.Errorf("unknown notification kind: %d %s", id, l)
	}
	if id, l := AuditEventID("brand-new"); id != EventIDAuditOther || l != EventInformation {
		t.Errorf("unknown audit kind: %d %s", id, l)
	}
}

// kindConstants parses this package's sources for the constants of type
// typ (NoteKind, EventKind), wherever they are declared.
func kindConstants(t *testing.T, typ string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != typ {
					continue
				}
				for i, n := range vs.Names {
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok {
						t.Fatalf("%s: %s is not a string literal", f, n.Name)
					}
					v, _ := strconv.Unquote(lit.Value)
					out[n.Name] = v
				}
			}
		}
	}
	return out
}

// TestEveryKindHasEventID: a notification or audit kind added anywhere in
// the package without its own event ID fails here (it would be written as
// 199 or 299, which monitoring cannot tell apart).
func TestEveryKindHasEventID(t *testing.T) {
	notes := kindConstants(t, "NoteKind")
	if len(notes) < 17 {
		t.Fatalf("found %d NoteKind constants: the parse is broken", len(notes))
	}
	for name, v := range notes {
		if _, ok := noteEventIDs[NoteKind(v)]; !ok {
			t.Errorf("notification kind %s (%q) has no event ID in eventlog.go", name, v)
		}
	}
	audits := kindConstants(t, "EventKind")
	if len(audits) < 20 {
		t.Fatalf("found %d EventKind constants: the parse is broken", len(audits))
	}
	for name, v := range audits {
		if _, ok := auditEventIDs[EventKind(v)]; !ok {
			t.Errorf("audit kind %s (%q) has no event ID in eventlog.go", name, v)
		}
	}
	// IDs are unique, in their range and within EventCreate.exe's 1-1000.
	seen := map[EventID]string{}
	claim := func(id EventID, what string, lo, hi EventID) {
		if prev, dup := seen[id]; dup {
			t.Errorf("event ID %d is both %s and %s", id, prev, what)
		}
		seen[id] = what
		if id < lo || id > hi || id < 1 || id > 1000 {
			t.Errorf("%s has event ID %d, outside %d-%d", what, id, lo, hi)
		}
	}
	for k, id := range noteEventIDs {
		claim(id, "notification "+string(k), 101, 198)
	}
	for k, d := range auditEventIDs {
		claim(d.id, "audit "+string(k), 201, 298)
	}
}

// docEventRows reads docs/operations.md's table of event IDs: ID -> the
// row's level and what it names (the kind in backquotes).
func docEventRows(t *testing.T) map[uint32][2]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (\\d{3}) \\| ([A-Za-z /]+?) \\| `?([a-z-]+)`? ")
	out := map[uint32][2]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		id, _ := strconv.Atoi(m[1])
		out[uint32(id)] = [2]string{m[2], m[3]}
	}
	return out
}

// TestEventIDsDocumented: docs/operations.md lists every event ID with
// its kind and level, as the agent writes them.
func TestEventIDsDocumented(t *testing.T) {
	rows := docEventRows(t)
	for k, id := range noteEventIDs {
		r, ok := rows[uint32(id)]
		if !ok || r[1] != string(k) {
			t.Errorf("docs/operations.md: event %d should be the notification %s, has %v", id, k, r)
		}
	}
	for k, d := range auditEventIDs {
		r, ok := rows[uint32(d.id)]
		if !ok || r[1] != string(k) || r[0] != d.level.String() {
			t.Errorf("docs/operations.md: event %d should be the audit entry %s at %s, has %v", d.id, k, d.level, r)
		}
	}
	for id, want := range map[EventID]string{EventIDServiceStarted: "Information", EventIDServiceStopped: "Information",
		EventIDServiceFailed: "Error", EventIDLogWarning: "Warning", EventIDLogError: "Error"} {
		if r, ok := rows[uint32(id)]; !ok || r[0] != want {
			t.Errorf("docs/operations.md: event %d should be documented at %s, has %v", id, want, r)
		}
	}
	if want := len(noteEventIDs) + len(auditEventIDs) + 5 + 2; len(rows) != want {
		t.Errorf("docs/operations.md's event table has %d rows, want %d (a retired or unknown ID?)", len(rows), want)
	}
}

// TestEventsWrittenToSink: a real install, a rollback by hand and a
// tampered download reach the sink as the documented events, at the
// documented levels; what the sink gets copies, never replaces, the audit
// log; a failing sink does not fail the step.
func TestEventsWrittenToSink(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	sink := &fakeSink{}
	do := func(fn func(a *Agent) error) error {
		t.Helper()
		a, err := Open(e.state, &OpenOptions{Events: sink})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		return fn(a)
	}
	ctx := context.Background()
	e.publish("1.0.0")
	for _, step := range []func(a *Agent) error{
		func(a *Agent) error { _, err := a.Check(ctx); return err },
		func(a *Agent) error { _, err := a.Stage(ctx, ""); return err },
		func(a *Agent) error { _, err := a.Apply(ctx, "", ApplyOptions{}); return err },
	} {
		if err := do(step); err != nil {
			t.Fatal(err)
		}
	}
	got := sink.take()
	for _, want := range []struct {
		id    EventID
		level EventLevel
		text  string
	}{
		{EventIDAuditUpdateAvailable, EventInformation, "audit: update-available notification-client 1.0.0"},
		{EventIDNoteUpdateAvailable, EventInformation, "notification: update-available (info)"},
		{EventIDAuditStaged, EventInformation, "audit: staged notification-client 1.0.0"},
		{EventIDAuditInstalled, EventInformation, "audit: installed notification-client 1.0.0"},
		{EventIDNoteInstalled, EventInformation, "component: notification-client"},
	} {
		ev := find(got, want.id)
		if ev == nil {
			t.Errorf("no event %d after check, stage and apply; got %+v", want.id, got)
			continue
		}
		if ev.Level != want.level || !strings.Contains(ev.Msg, want.text) || !strings.Contains(ev.Msg, "device: "+e.config().DeviceID) {
			t.Errorf("event %d = %s %q, want %s with %q and the device", want.id, ev.Level, ev.Msg, want.level, want.text)
		}
	}

	// Every audit entry the steps appended was written, once, in order.
	var entries []LogEntry
	if err := e.do(func(a *Agent) error { var err error; entries, _, err = a.ExportLogs(); return err }); err != nil {
		t.Fatal(err)
	}
	var audited []uint32
	for _, en := range entries {
		var ev AuditEvent
		if err := json.Unmarshal(en.Entry, &ev); err != nil {
			t.Fatal(err)
		}
		id, _ := AuditEventID(ev.Event)
		audited = append(audited, uint32(id))
	}
	var written []uint32
	for _, ev := range got {
		if ev.ID >= 200 && ev.ID < 300 {
			written = append(written, ev.ID)
		}
	}
	if fmt.Sprint(written) != fmt.Sprint(audited) {
		t.Errorf("audit events written %v, audit.jsonl has %v", written, audited)
	}

	// A rollback by hand is a warning.
	e.publish("1.1.0")
	e.install("1.1.0")
	sink.take()
	if err := do(func(a *Agent) error { _, err := a.Rollback(ctx, flowComp); return err }); err != nil {
		t.Fatal(err)
	}
	got = sink.take()
	if ev := find(got, EventIDAuditRollback); ev == nil || ev.Level != EventWarning || !strings.Contains(ev.Msg, "audit: rollback notification-client") {
		t.Errorf("rollback by hand: event %+v in %+v", ev, got)
	}
	if ev := find(got, EventIDNoteRolledBack); ev == nil || ev.Level != EventWarning {
		t.Errorf("rollback by hand: notification event %+v in %+v", ev, got)
	}

	// A tampered download is a possible attack: errors, with the reason.
	e.publish("1.2.0")
	e.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, flowArtifact("1.2.0")) {
			w.Write(bytes.Repeat([]byte{'x'}, 64))
			return true
		}
		return false
	})
	sink.fail = errors.New("the event log is full")
	if err := do(func(a *Agent) error { _, err := a.Check(ctx); return err }); err != nil {
		t.Fatalf("a failing sink failed the check: %v", err)
	}
	if err := do(func(a *Agent) error { _, err := a.Stage(ctx, ""); return err }); !errors.Is(err, ErrVerification) {
		t.Fatalf("stage of a tampered download: %v, want a verification failure", err)
	}
	got = sink.take()
	for _, id := range []EventID{EventIDAuditVerificationFailure, EventIDNoteVerificationFailure} {
		if ev := find(got, id); ev == nil || ev.Level != EventError || !strings.Contains(ev.Msg, "notification-client") {
			t.Errorf("tampered download: event %d = %+v in %+v, want an error naming the component", id, ev, got)
		}
	}
	if ev := find(got, EventIDNoteVerificationFailure); ev != nil && !strings.Contains(ev.Msg, "this may be an attack") {
		t.Errorf("verification failure event does not say it may be an attack: %q", ev.Msg)
	}
}

// carrier is a log handler that carries a sink, as the Windows service's
// does (internal/eventlog.Handler).
type carrier struct {
	slog.Handler
	sink EventSink
}

func (c carrier) EventSink() EventSink { return c.sink }

// TestEventSinkFromLogHandler: Run gives the agent only a logger; a
// logger whose handler carries a sink has the agent write to it, and an
// explicit OpenOptions.Events wins.
func TestEventSinkFromLogHandler(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	viaLog, explicit := &fakeSink{}, &fakeSink{}
	log := slog.New(carrier{Handler: slog.DiscardHandler, sink: viaLog})
	check := func(o *OpenOptions) {
		t.Helper()
		a, err := Open(e.state, o)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if _, err := a.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	check(&OpenOptions{Log: log})
	if ev := find(viaLog.take(), EventIDAuditUpdateAvailable); ev == nil {
		t.Error("the sink the log's handler carries got no update-available event")
	}
	e.publish("1.1.0")
	check(&OpenOptions{Log: log, Events: explicit})
	if n := len(viaLog.take()); n != 0 {
		t.Errorf("the log's sink got %d events although OpenOptions.Events was given", n)
	}
	if ev := find(explicit.take(), EventIDAuditUpdateAvailable); ev == nil {
		t.Error("OpenOptions.Events got no update-available event")
	}
	// No sink at all: nothing to write to, nothing fails.
	e.publish("1.2.0")
	check(&OpenOptions{Log: slog.New(slog.DiscardHandler)})
	check(nil)
}

// TestEventMessages: what an event's text says, with control characters
// escaped (a message may quote a server).
func TestEventMessages(t *testing.T) {
	n := Notification{Kind: NoteRepositoryUnreachable, Severity: SeverityWarning, Message: "https://updates.example could not be reached\x1b[31m"}
	msg := noteMessage(n, "INST-0042")
	for _, want := range []string{"could not be reached", "notification: repository-unreachable (warning)", "device: INST-0042"} {
		if !strings.Contains(msg, want) {
			t.Errorf("note message %q lacks %q", msg, want)
		}
	}
	if strings.ContainsRune(msg, 0x1b) || strings.Contains(msg, "component:") {
		t.Errorf("note message %q: an escape passed, or an empty field was written", msg)
	}
	ev := AuditEvent{Event: EventConsentDecision, Device: "INST-0042", Component: flowComp, Version: "1.1.0",
		Feature: "phi-file-transfer", Decision: DecisionGranted, By: "Ann Lee"}
	msg = auditMessage(ev)
	for _, want := range []string{"audit: consent-decision notification-client 1.1.0", "feature: phi-file-transfer", "decision: granted", "by: Ann Lee", "device: INST-0042"} {
		if !strings.Contains(msg, want) {
			t.Errorf("audit message %q lacks %q", msg, want)
		}
	}
}
