package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/client"
)

// TestMalformedMetadataIsAVerificationFailure: metadata that does not even
// parse is hostile data like metadata that does not verify: exit 3, a
// "possible attack" audit entry and a critical notification, never "the
// repository could not be reached".
func TestMalformedMetadataIsAVerificationFailure(t *testing.T) {
	cases := []struct {
		name, file string
		data       string
		want       string // in the error: names the file at fault
	}{
		{"timestamp.json not JSON", "timestamp.json", "{", "timestamp.json"},
		{"timestamp.json truncated", "timestamp.json", `{"signed": {"_type": "timestamp", "version": 9`, "timestamp.json"},
		{"timestamp.json of the wrong shape", "timestamp.json", `{"signed": [], "signatures": 7}`, "timestamp.json"},
		{"next root not JSON", "2.root.json", "\x00\x01garbage", "2.root.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			e.publish("1.1.0")
			if err := os.WriteFile(filepath.Join(e.store.Dir, "metadata", tc.file), []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			before := e.snap()
			err := e.check()
			if !errors.Is(err, client.ErrVerification) {
				t.Fatalf("want a verification failure (exit 3), got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("the error does not name %s: %v", tc.want, err)
			}
			if e.snap() != before {
				t.Fatal("a refused check changed install/ or state.json")
			}
			notes := e.notifications()
			if !slices.ContainsFunc(notes, func(n client.Notification) bool {
				return n.Kind == client.NoteVerificationFailure && n.Severity == "critical"
			}) {
				t.Errorf("no critical verification-failure notification: %+v", notes)
			}
			if slices.ContainsFunc(notes, func(n client.Notification) bool { return n.Kind == client.NoteRepositoryUnreachable }) {
				t.Errorf("malformed data reported as an unreachable repository: %+v", notes)
			}
			if !e.auditHas(client.EventVerificationFailure) {
				t.Error("no verification-failure audit entry")
			}
		})
	}
}
