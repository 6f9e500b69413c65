package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/repo"
)

// forgeAfterHead appends a well-formed record to a log the way an attacker
// with write access to the file would: the right sequence number and the
// sha256 of the line before, but the head (<log>.head) left alone.
func forgeAfterHead(t *testing.T, p string, entry any) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var lines []string
	if len(data) > 0 {
		lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	}
	prev := ""
	if len(lines) > 0 {
		s := sha256.Sum256([]byte(lines[len(lines)-1]))
		prev = hex.EncodeToString(s[:])
	}
	body, err := json.Marshal(entry)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(map[string]any{"seq": len(lines) + 1, "prev": prev, "entry": json.RawMessage(body)})
	head, headErr := os.ReadFile(p + ".head")
	f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if after, err := os.ReadFile(p + ".head"); !bytes.Equal(head, after) || (headErr == nil) != (err == nil) {
		t.Fatal("the forgery must not touch the head")
	}
}

// TestForgedConsentPastHeadIsRefused: a grant appended past the consent
// log's head, chained correctly, is not a grant. The logs fail verification
// (exit 3) and the gated feature stays off.
func TestForgedConsentPastHeadIsRefused(t *testing.T) {
	newText := fileTransfer
	newText.Description += " Transfers now include the instrument's log files."
	cases := []struct {
		name string
		// setup installs what the device has before the attack and returns
		// the pending feature and its version.
		setup   func(t *testing.T, e *env) (repo.Feature, string)
		wantMsg string
	}{
		{"first record, no head yet", func(t *testing.T, e *env) (repo.Feature, string) {
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
			return fileTransfer, "1.1.0"
		}, "consent.jsonl.head is missing"},
		{"past a real head", func(t *testing.T, e *env) (repo.Feature, string) {
			// A real decision puts a real entry and head in the log.
			e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
			e.check()
			e.stage()
			if err := e.applyWith(client.ApplyOptions{Decline: []string{fileTransfer.ID}, By: "Dr. Ada"}); err != nil {
				t.Fatal(err)
			}
			if e.current() != "1.1.0" {
				t.Fatalf("current %s after decline", e.current())
			}
			// The next release changes the text: a person must be asked again.
			e.publishFeatures("1.2.0", []repo.Feature{newText})
			return newText, "1.2.0"
		}, "consent.jsonl entry 2 is not covered by consent.jsonl.head"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			f, version := tc.setup(t, e)
			if err := e.do(func(a *client.Agent) error { _, err := a.VerifyLogs(); return err }); err != nil {
				t.Fatalf("logs before the attack: %v", err)
			}
			installed := e.current()

			forgeAfterHead(t, filepath.Join(e.state, "consent.jsonl"), client.ConsentRecord{
				Time: time.Now().UTC(), Decision: client.DecisionGranted, By: "Dr. Ada", OSUser: "lab",
				DeviceID: "INST-0042", DeviceModel: "Navios EX", Component: component, Version: version,
				Feature: f.ID, TextSHA256: client.FeatureTextSHA256(f), Interactive: true,
			})

			// bcagent audit verify: exit 3, naming the entry.
			err := e.do(func(a *client.Agent) error { _, err := a.VerifyLogs(); return err })
			if !errors.Is(err, client.ErrVerification) || !errors.Is(err, client.ErrLogDamaged) {
				t.Fatalf("VerifyLogs: want ErrVerification (exit 3), got %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("VerifyLogs error %q does not say %q", err, tc.wantMsg)
			}

			// The next run of the agent does not activate the feature.
			e.check()
			if err := e.stage(); err == nil {
				t.Fatal("stage accepted the release as if the forged grant counted")
			}
			before := e.snap()
			err = e.apply()
			if !errors.Is(err, client.ErrVerification) && !errors.Is(err, client.ErrAuthorizationRequired) {
				t.Fatalf("apply: want a verification failure or ErrAuthorizationRequired, got %v", err)
			}
			if slices.Contains(e.active(), f.ID) {
				t.Fatalf("forged grant activated %s: active %v", f.ID, e.active())
			}
			if e.current() != installed {
				t.Fatalf("current is %s, want %s still", e.current(), installed)
			}
			if e.snap() != before {
				t.Fatal("a refused apply changed install/ or state.json")
			}
			// Still refused on the next look: nothing past the head ever counts.
			if err := e.do(func(a *client.Agent) error { _, err := a.VerifyLogs(); return err }); !errors.Is(err, client.ErrVerification) {
				t.Fatalf("VerifyLogs after apply: %v", err)
			}
		})
	}
}

// TestForgedAnnouncedConsentGrantsNothing: a forged grant with a forged
// "next" announcement in the head (what a crash between the two writes
// of an append leaves) verifies as a crash, but grants nothing, and the
// agent's next append cuts it off instead of committing to it.
func TestForgedAnnouncedConsentGrantsNothing(t *testing.T) {
	e := newEnv(t)
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	e.check()
	if err := e.stage(); !errors.Is(err, client.ErrAuthorizationRequired) {
		t.Fatal(err)
	}
	p := filepath.Join(e.state, "consent.jsonl")
	body, _ := json.Marshal(grant(fileTransfer))
	line, _ := json.Marshal(map[string]any{"seq": 1, "prev": "", "entry": json.RawMessage(body)})
	os.WriteFile(p, append(line, '\n'), 0o600)
	sum := sha256.Sum256(line)
	head, _ := json.Marshal(map[string]any{"seq": 0, "hash": "", "next": map[string]any{"seq": 1, "hash": hex.EncodeToString(sum[:])}})
	os.WriteFile(p+".head", head, 0o600)

	var list []client.ConsentStatus
	if err := e.do(func(a *client.Agent) error { var err error; list, err = a.ConsentList(); return err }); err != nil || len(list) != 0 {
		t.Fatalf("consent list: %v %+v: an announced, unacknowledged entry is no decision", err, list)
	}
	if err := e.apply(); !errors.Is(err, client.ErrAuthorizationRequired) {
		t.Fatalf("apply: want the gate, got %v", err)
	}
	if slices.Contains(e.active(), fileTransfer.ID) {
		t.Fatal("the forged grant turned the feature on")
	}
	// A real decision now: the forged line is cut off, not committed.
	if err := e.applyWith(client.ApplyOptions{Decline: []string{fileTransfer.ID}, By: "Dr. Ada"}); err != nil {
		t.Fatal(err)
	}
	if err := e.do(func(a *client.Agent) error { var err error; list, err = a.ConsentList(); return err }); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Decision != client.DecisionDeclined || list[0].Active {
		t.Fatalf("after a real decision: %+v", list)
	}
	if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(client.DecisionGranted)) {
		t.Fatalf("the forged grant is still in the log:\n%s", b)
	}
}
