package client

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// refuseBundle imports a file that is no bundle: refused, audited, and a
// critical verification-failure notification raised, as on a PC that
// lives on bundles.
func refuseBundle(t *testing.T, e *flowEnv) {
	t.Helper()
	bad := filepath.Join(t.TempDir(), "bad.bcbundle")
	if err := os.WriteFile(bad, []byte(strings.Repeat("x", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.importBundle(bad, time.Time{}); !errors.Is(err, ErrVerification) {
		t.Fatalf("importing a file that is no bundle: %v, want a verification failure", err)
	}
}

// ackEntries are the audit log's notification-acknowledged entries; the
// log must verify (bcagent audit verify's path).
func ackEntries(t *testing.T, a *Agent) []AuditEvent {
	t.Helper()
	if _, err := a.VerifyLogs(); err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	au, _, err := a.ExportLogs()
	if err != nil {
		t.Fatal(err)
	}
	var out []AuditEvent
	for _, le := range au {
		var ev AuditEvent
		if err := json.Unmarshal(le.Entry, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Event == EventNotificationAcknowledged {
			out = append(out, ev)
		}
	}
	return out
}

// TestAckEndsCriticalNotification: on an offline PC a refused bundle's
// critical notification (status verification-failure) is ended by a
// person's acknowledgement, recorded in the audit log (who, why, what it
// said; the chain verifies) and written to the event sink as 230; the
// verdict is no longer verification-failure; another refusal raises it
// again.
func TestAckEndsCriticalNotification(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.offline()
	refuseBundle(t, e)
	sink := &fakeSink{}
	a, err := Open(e.state, &OpenOptions{Events: sink})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	notes, _ := a.Notifications()
	if len(notes) != 1 || notes[0].Kind != NoteVerificationFailure || notes[0].Severity != SeverityCritical || notes[0].ID != "verification-failure" {
		t.Fatalf("after a refused bundle: %+v, want one critical verification-failure", notes)
	}
	orig := notes[0]
	if st, err := a.Status(); err != nil || st.Health != HealthVerification {
		t.Fatalf("status before the ack: %v, %v", st.Health, err)
	}
	ack, err := a.Acknowledge("verification-failure", "Ann Lee", "looked at refused/bad.bcbundle.reason.txt: a corrupted copy")
	if err != nil {
		t.Fatal(err)
	}
	if ack.Notification.ID != orig.ID || ack.By != "Ann Lee" || ack.Notification.Message != orig.Message {
		t.Errorf("acknowledgement %+v, want %s by Ann Lee", ack, orig.ID)
	}
	if notes, _ := a.Notifications(); flowHasNote(notes, NoteVerificationFailure) {
		t.Errorf("still active after the ack: %+v", notes)
	}
	if st, err := a.Status(); err != nil || st.Health == HealthVerification || len(st.Alerts) != 0 {
		t.Errorf("status after the ack: health %v, alerts %+v, %v", st.Health, st.Alerts, err)
	}
	acks := ackEntries(t, a)
	if len(acks) != 1 {
		t.Fatalf("%d notification-acknowledged entries, want 1", len(acks))
	}
	for _, want := range []string{"critical notification verification-failure", "Ann Lee", "reason: looked at refused/bad.bcbundle.reason.txt: a corrupted copy", "it said: " + orig.Message} {
		if !strings.Contains(acks[0].Detail, want) {
			t.Errorf("audit detail %q lacks %q", acks[0].Detail, want)
		}
	}
	if acks[0].By != "Ann Lee" || acks[0].Device != e.config().DeviceID || acks[0].Time.IsZero() {
		t.Errorf("audit entry %+v: want by Ann Lee, the device and a time", acks[0])
	}
	ev := find(sink.take(), EventIDAuditNoteAcknowledged)
	if ev == nil || ev.Level != EventWarning || !strings.Contains(ev.Msg, "audit: notification-acknowledged") || !strings.Contains(ev.Msg, "by: Ann Lee") {
		t.Errorf("event sink: %+v, want event 230 at Warning naming who", ev)
	}
	a.Close()

	// The same condition again raises it again.
	refuseBundle(t, e)
	e.do(func(a *Agent) error {
		notes, _ := a.Notifications()
		if !flowHasNote(notes, NoteVerificationFailure) {
			t.Errorf("a second refused bundle after the ack raised nothing: %+v", notes)
		}
		if st, err := a.Status(); err != nil || st.Health != HealthVerification {
			t.Errorf("status after a second refusal: %v, %v", st.Health, err)
		}
		// Without a reason, and by its ID.
		if _, err := a.Acknowledge("verification-failure", "Bob", ""); err != nil {
			t.Fatal(err)
		}
		if acks := ackEntries(t, a); len(acks) != 2 || !strings.Contains(acks[1].Detail, "reason: none given") || acks[1].By != "Bob" {
			t.Errorf("second acknowledgement: %+v", acks)
		}
		return nil
	})
}

// TestAckRefusals: no person, a name with control characters, a key that
// names no active notification, and a kind active for several components
// are usage errors that change nothing; a warning is acknowledged like a
// critical one, and an ID picks one of several of a kind.
func TestAckRefusals(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	a := e.open()
	defer a.Close()
	a.raise(NoteVerificationFailure, SeverityCritical, "notification-client", "1.2.0", "an update failed verification and was refused; this may be an attack: nc")
	a.raise(NoteVerificationFailure, SeverityCritical, "remote-support", "2.0.0", "an update failed verification and was refused; this may be an attack: rs")
	a.raise(NoteRepositoryUnreachable, SeverityWarning, "", "", "https://updates.example.com could not be reached")
	before, _ := os.ReadFile(filepath.Join(e.state, "notifications.json"))
	for _, tc := range []struct{ name, key, by, reason, want string }{
		{"no --by", "repository-unreachable", "", "", "--by NAME is required"},
		{"a blank --by", "repository-unreachable", "   ", "", "--by NAME is required"},
		{"a --by with an escape", "repository-unreachable", "Ann\x1b[2K", "", "--by:"},
		{"a --reason with a newline", "repository-unreachable", "Ann", "a\nb", "--reason:"},
		{"an unknown key", "no-such", "Ann", "", `no active notification has the ID or kind "no-such" (active: verification-failure:notification-client, verification-failure:remote-support, repository-unreachable;`},
		{"a kind not active", "metadata-expired", "Ann", "", "no metadata-expired notification is active"},
		{"an ID not active", "verification-failure:other", "Ann", "", `"verification-failure:other"`},
		{"a kind active twice", "verification-failure", "Ann", "", "verification-failure notifications are active for several components (verification-failure:notification-client, verification-failure:remote-support): give the ID of one"},
		{"no key", "", "Ann", "", "give the ID or kind"},
	} {
		_, err := a.Acknowledge(tc.key, tc.by, tc.reason)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want a one-line usage error with %q", tc.name, err, tc.want)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(e.state, "notifications.json")); string(after) != string(before) {
		t.Errorf("a refused ack changed notifications.json:\n%s\nwas:\n%s", after, before)
	}
	if acks := ackEntries(t, a); len(acks) != 0 {
		t.Errorf("a refused ack was audited: %+v", acks)
	}
	// A warning, by its kind; one critical of two, by its ID.
	if ack, err := a.Acknowledge("repository-unreachable", "Ann", "offline by design"); err != nil || ack.Notification.Severity != SeverityWarning {
		t.Fatalf("ack of a warning: %+v, %v", ack, err)
	}
	if _, err := a.Acknowledge("verification-failure:remote-support", "Ann", ""); err != nil {
		t.Fatal(err)
	}
	notes, _ := a.Notifications()
	if len(notes) != 1 || notes[0].ID != "verification-failure:notification-client" {
		t.Errorf("left active: %+v, want only verification-failure:notification-client", notes)
	}
	if acks := ackEntries(t, a); len(acks) != 2 || acks[1].Component != "remote-support" || acks[1].Version != "2.0.0" {
		t.Errorf("audit entries: %+v", acks)
	}
	// Now one of its kind is left: the kind names it.
	if ack, err := a.Acknowledge("verification-failure", "Ann", ""); err != nil || ack.Notification.Component != "notification-client" {
		t.Errorf("ack by kind of the one left: %+v, %v", ack, err)
	}
}

// TestAckNeedsTheAuditLog: an acknowledgement that cannot be recorded
// (the audit log was tampered with) is refused and the notification stays.
func TestAckNeedsTheAuditLog(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	a := e.open()
	defer a.Close()
	a.audit(AuditEvent{Event: EventFailed, Detail: "first"})
	a.audit(AuditEvent{Event: EventFailed, Detail: "second"})
	a.raise(NoteVerificationFailure, SeverityCritical, "", "", "an update failed verification and was refused; this may be an attack")
	p := filepath.Join(e.state, "audit.jsonl")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), "first", "fixed", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acknowledge("verification-failure", "Ann", ""); err == nil || !strings.Contains(err.Error(), "the notification stays active") {
		t.Errorf("ack with a tampered audit log: %v, want a refusal", err)
	}
	if notes, _ := a.Notifications(); !flowHasNote(notes, NoteVerificationFailure) {
		t.Errorf("the notification was ended without a record: %+v", notes)
	}
}
