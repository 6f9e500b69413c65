package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/repo"
)

// TestLocalFilesDoNotRuleTheGate: features.json and the release metadata in
// state.json are outputs of the agent, not inputs: editing them turns
// nothing on, is noticed, and is put back.
func TestLocalFilesDoNotRuleTheGate(t *testing.T) {
	featuresFile := func(e *env) string { return filepath.Join(e.install, component, "features.json") }
	t.Run("features.json edited to turn a declined feature on", func(t *testing.T) {
		e := newEnv(t)
		e.publishFeatures("1.1.0", []repo.Feature{fileTransfer, {ID: "remote-notes", Consent: repo.ConsentNone}})
		e.check()
		e.stage()
		if err := e.applyWith(client.ApplyOptions{Decline: []string{fileTransfer.ID}, By: "Dr. Ada"}); err != nil {
			t.Fatal(err)
		}
		if got := e.active(); !slices.Equal(got, []string{"remote-notes"}) {
			t.Fatalf("active %v", got)
		}
		os.WriteFile(featuresFile(e), []byte(`{"active": ["phi-file-transfer", "remote-notes"]}`), 0o644)
		// Any command opens the state: the file is put back at once.
		st := e.status()
		if got := e.active(); !slices.Equal(got, []string{"remote-notes"}) {
			t.Fatalf("after the edit, active %v: features.json was not put back", got)
		}
		for _, f := range st.Components[0].Features {
			if f.ID == fileTransfer.ID && f.Active {
				t.Fatal("status shows the declined feature active")
			}
		}
		notes := e.notifications()
		if !slices.ContainsFunc(notes, func(n client.Notification) bool {
			return n.Kind == client.NoteFeaturesRestored && n.Severity == "critical" && strings.Contains(n.Message, "phi-file-transfer")
		}) {
			t.Fatalf("no critical features-restored notification: %+v", notes)
		}
		if !e.auditHas(client.EventFeaturesRestored) {
			t.Fatal("no features-restored audit entry")
		}
	})
	t.Run("features.json garbage", func(t *testing.T) {
		e := newEnv(t)
		e.publishFeatures("1.1.0", []repo.Feature{{ID: "remote-notes", Consent: repo.ConsentNone}})
		e.mustInstall("1.1.0")
		os.WriteFile(featuresFile(e), []byte(`{"active": [`), 0o644)
		if got := e.active(); !slices.Equal(got, []string{"remote-notes"}) {
			t.Fatalf("active %v", got)
		}
	})
	t.Run("a granted feature removed from features.json comes back", func(t *testing.T) {
		e := newEnv(t)
		e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
		e.check()
		e.stage()
		if err := e.applyWith(client.ApplyOptions{Authorize: []string{fileTransfer.ID}, By: "Dr. Ada"}); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(featuresFile(e), []byte(`{"active": []}`), 0o644)
		if got := e.active(); !slices.Equal(got, []string{fileTransfer.ID}) {
			t.Fatalf("active %v", got)
		}
	})
	t.Run("staged release's consent edited in state.json between stage and apply", func(t *testing.T) {
		e := newEnv(t)
		e.publish("1.0.0")
		e.mustInstall("1.0.0")
		e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
		e.check()
		if err := e.stage(); !errors.Is(err, client.ErrAuthorizationRequired) {
			t.Fatal(err)
		}
		e.editState(func(st map[string]any) {
			comp := st["components"].(map[string]any)[component].(map[string]any)
			feats := comp["staged"].(map[string]any)["bc"].(map[string]any)["features"].([]any)
			feats[0].(map[string]any)["consent"] = "none"
		})
		before := e.snap()
		if err := e.apply(); !errors.Is(err, client.ErrVerification) {
			t.Fatalf("apply after the edit: want a verification failure (exit 3), got %v", err)
		}
		if e.snap() != before {
			t.Fatal("a refused apply changed install/ or state.json")
		}
		if e.current() != "1.0.0" || slices.Contains(e.active(), fileTransfer.ID) {
			t.Fatalf("current %s, active %v", e.current(), e.active())
		}
	})
	t.Run("current moved to another version", func(t *testing.T) {
		e := newEnv(t)
		e.publish("1.0.0")
		e.mustInstall("1.0.0")
		e.publish("1.1.0")
		e.mustInstall("1.1.0")
		compDir := filepath.Join(e.install, component)
		os.Remove(filepath.Join(compDir, "current"))
		os.Symlink("1.0.0", filepath.Join(compDir, "current"))
		e.status() // any command opens the state
		if e.current() != "1.1.0" {
			t.Fatalf("current is %s, want it put back on 1.1.0", e.current())
		}
		if !slices.ContainsFunc(e.notifications(), func(n client.Notification) bool {
			return n.Kind == client.NoteFeaturesRestored && n.Severity == "critical" && strings.Contains(n.Message, "current pointed at")
		}) {
			t.Fatal("no critical notification")
		}
	})
	t.Run("PHI classes removed from state.json", func(t *testing.T) {
		e := newEnv(t)
		e.publish("1.0.0")
		e.mustInstall("1.0.0")
		e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
		e.check()
		e.stage()
		e.editState(func(st map[string]any) { st["phi_device_classes"] = []string{"DxFLEx"} })
		if err := e.apply(); !errors.Is(err, client.ErrAuthorizationRequired) {
			t.Fatalf("apply: want the gate (the built-in classes are a floor), got %v", err)
		}
		if slices.Contains(e.active(), fileTransfer.ID) {
			t.Fatal("feature active")
		}
	})
}

// TestPHIModelNormalized: a Navios EX typed another way is still a PHI device.
func TestPHIModelNormalized(t *testing.T) {
	for _, model := range []string{"NAVIOS EX", "navios  ex", " Navios\u00a0EX ", "Ｎａｖｉｏｓ ＥＸ"} {
		t.Run(model, func(t *testing.T) {
			e := newEnvWith(t, func(c *client.Config) { c.DeviceModel = model })
			e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
			e.check()
			if err := e.stage(); !errors.Is(err, client.ErrAuthorizationRequired) {
				t.Fatalf("stage: want the gate, got %v", err)
			}
			if !e.status().Device.PHI {
				t.Fatal("not a PHI device")
			}
		})
	}
}

func (e *env) notifications() []client.Notification {
	e.t.Helper()
	var notes []client.Notification
	if err := e.do(func(a *client.Agent) error { var err error; notes, err = a.Notifications(); return err }); err != nil {
		e.t.Fatal(err)
	}
	return notes
}

func (e *env) auditHas(event client.EventKind) bool {
	e.t.Helper()
	var audit []client.LogEntry
	if err := e.do(func(a *client.Agent) error { var err error; audit, _, err = a.ExportLogs(); return err }); err != nil {
		e.t.Fatal(err)
	}
	for _, en := range audit {
		var m map[string]any
		json.Unmarshal(en.Entry, &m)
		if m["event"] == string(event) {
			return true
		}
	}
	return false
}

// editState changes state.json the way a local user with an editor would.
func (e *env) editState(fn func(map[string]any)) {
	e.t.Helper()
	p := filepath.Join(e.state, "state.json")
	b, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Fatal(err)
	}
	fn(st)
	b, _ = json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}
