package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/client"
)

// oneLine fails unless s is a single line.
func oneLine(t *testing.T, what, s string) {
	t.Helper()
	if strings.Count(strings.TrimSpace(s), "\n") != 0 {
		t.Errorf("%s is more than one line: %q", what, s)
	}
}

// TestCLINotificationAck: a PC that lives on bundles, healthy on a good
// bundle, turns verification-failure (exit 3) after a refused one; the
// notification shows its ID (text and --json); notifications ack with
// --by ends it (one line, exit 0, audited, the logs verify) and status
// is back to 0; a missing --by, an empty one, no ID and an unknown ID are
// exit 2 in one line; another refusal raises it again.
func TestCLINotificationAck(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	good := fx.bundle(t, "1.0.0")
	state, _ := initAgent(t, fx, "http://127.0.0.1:1", "--component", "notification-client")
	random := filepath.Join(fx.dir, "random.bcbundle")
	if err := os.WriteFile(random, []byte(strings.Repeat("x", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, 0, nil, "--state", state, "import", good)
	expect(t, 0, nil, "--state", state, "apply")
	expect(t, 0, []string{"health: ok"}, "--state", state, "status")
	expect(t, 3, []string{"not a bcupdate bundle"}, "--state", state, "import", random)
	expect(t, 3, []string{"health: verification-failure"}, "--state", state, "status")

	// The ID a person types is shown, in text and JSON.
	// (The install's info notification is active too.)
	expect(t, 0, []string{"[critical] verification-failure, since ", "this may be an attack", "[info] installed:notification-client, since "}, "--state", state, "notifications")
	out := expect(t, 0, nil, "--state", state, "notifications", "--json")
	var notes []client.Notification
	if err := json.Unmarshal([]byte(out), &notes); err != nil || len(notes) != 2 || notes[1].ID != "verification-failure" || notes[1].Severity != client.SeverityCritical ||
		notes[0].ID != "installed:notification-client" {
		t.Fatalf("notifications --json: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no --by", []string{"verification-failure"}, "--by is required"},
		{"an empty --by", []string{"verification-failure", "--by", " "}, "--by NAME is required"},
		{"no ID", []string{"--by", "Ann Lee"}, "takes one ID or KIND"},
		{"two IDs", []string{"verification-failure", "no-release", "--by", "Ann Lee"}, "takes one ID or KIND"},
		{"an unknown ID", []string{"no-such-thing", "--by", "Ann Lee"}, `no active notification has the ID or kind "no-such-thing" (active: installed:notification-client, verification-failure;`},
		{"a kind not active", []string{"metadata-expired", "--by", "Ann Lee"}, "no metadata-expired notification is active"},
	} {
		code, so, se := bcagent(t, append([]string{"--state", state, "notifications", "ack"}, tc.args...)...)
		if code != exitUsage || so != "" || !strings.Contains(se, tc.want) {
			t.Errorf("notifications ack, %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.name, code, so, se, tc.want)
		}
		oneLine(t, "notifications ack, "+tc.name, se)
	}
	expect(t, 3, []string{"health: verification-failure"}, "--state", state, "status")

	code, so, se := bcagent(t, "--state", state, "notifications", "ack", "verification-failure", "--by", "Ann Lee",
		"--reason", "refused/random.bcbundle.reason.txt: not a bundle, a copy gone wrong")
	if code != 0 || se != "" || !strings.Contains(so, "critical notification verification-failure acknowledged by Ann Lee") {
		t.Fatalf("notifications ack: exit %d, stdout %q, stderr %q", code, so, se)
	}
	oneLine(t, "notifications ack", so)
	expect(t, 0, []string{"health: ok"}, "--state", state, "status")
	if out := expect(t, 0, []string{"installed:notification-client"}, "--state", state, "notifications"); strings.Contains(out, "verification-failure") {
		t.Errorf("notifications after the ack:\n%s", out)
	}
	expect(t, 0, []string{"audit log verified"}, "--state", state, "audit", "verify")
	expect(t, 0, []string{"event=notification-acknowledged", `by="Ann Lee"`, "a copy gone wrong", "not a bcupdate bundle"}, "--state", state, "audit", "export")
	// Acknowledged already: nothing active by that name.
	expect(t, 2, []string{"no verification-failure notification is active (active: installed:notification-client;"}, "--state", state, "notifications", "ack", "verification-failure", "--by", "Ann Lee")
	// An info notification is acknowledged the same way, by its ID.
	expect(t, 0, []string{"info notification installed:notification-client acknowledged by Bob"}, "--state", state, "notifications", "ack", "installed:notification-client", "--by", "Bob")
	expect(t, 0, []string{"no active notifications"}, "--state", state, "notifications")

	// Another refusal raises it again.
	expect(t, 3, []string{"not a bcupdate bundle"}, "--state", state, "import", random)
	expect(t, 3, []string{"health: verification-failure"}, "--state", state, "status")
}
