package e2e

import (
	"bytes"
	"context"
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
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

var fileTransfer = repo.Feature{
	ID:          "phi-file-transfer",
	Title:       "File transfer during remote support sessions",
	Description: "Lets a Beckman Coulter support representative copy files to and from this PC during a session you approve. Files may contain personal health information.",
	Consent:     repo.ConsentPHIDevices,
}

func (e *env) applyWith(o client.ApplyOptions) error {
	return e.do(func(a *client.Agent) error { _, err := a.Apply(context.Background(), "", o); return err })
}

func (e *env) active() []string {
	e.t.Helper()
	var out []string
	e.do(func(a *client.Agent) error {
		var err error
		out, err = a.ActiveFeatures(component)
		return err
	})
	return out
}

func (e *env) status() *client.StatusReport {
	e.t.Helper()
	var st *client.StatusReport
	if err := e.do(func(a *client.Agent) error { var err error; st, err = a.Status(); return err }); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// appendConsent writes a well-chained record into the agent's consent log
// the way the agent does, to plant grants that must not count.
func appendConsent(t *testing.T, stateDir string, rec client.ConsentRecord) {
	t.Helper()
	p := filepath.Join(stateDir, "consent.jsonl")
	data, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(data) == 0 {
		lines = nil
	}
	prev := ""
	if len(lines) > 0 {
		s := sha256.Sum256([]byte(lines[len(lines)-1]))
		prev = hex.EncodeToString(s[:])
	}
	body, _ := json.Marshal(rec)
	line, _ := json.Marshal(map[string]any{"seq": len(lines) + 1, "prev": prev, "entry": json.RawMessage(body)})
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	f.Write(append(line, '\n'))
	f.Close()
	s := sha256.Sum256(line)
	head, _ := json.Marshal(map[string]any{"seq": len(lines) + 1, "hash": hex.EncodeToString(s[:])})
	os.WriteFile(p+".head", head, 0o600)
}

func grant(f repo.Feature) client.ConsentRecord {
	return client.ConsentRecord{Time: time.Now().UTC(), Decision: client.DecisionGranted, By: "Dr. Ada", OSUser: "lab",
		DeviceID: "INST-0042", DeviceModel: "Navios EX", Component: component, Version: "1.1.0",
		Feature: f.ID, TextSHA256: client.FeatureTextSHA256(f)}
}

// TestGateKeepsFeatureOff: every way a gated feature must not become active.
func TestGateKeepsFeatureOff(t *testing.T) {
	otherText := fileTransfer
	otherText.Description += " (an earlier wording)"
	cases := []struct {
		name  string
		plant func(t *testing.T, e *env)
		// wantErr is what apply returns without any decision flags.
		wantErr error
	}{
		{"no decision", nil, client.ErrAuthorizationRequired},
		{"grant for another device", func(t *testing.T, e *env) {
			g := grant(fileTransfer)
			g.DeviceID = "INST-9999"
			appendConsent(t, e.state, g)
		}, client.ErrAuthorizationRequired},
		{"grant for another component", func(t *testing.T, e *env) {
			g := grant(fileTransfer)
			g.Component = "remote-support-client"
			appendConsent(t, e.state, g)
		}, client.ErrAuthorizationRequired},
		{"grant for another feature", func(t *testing.T, e *env) {
			g := grant(fileTransfer)
			g.Feature = "remote-control"
			appendConsent(t, e.state, g)
		}, client.ErrAuthorizationRequired},
		{"grant for another feature text", func(t *testing.T, e *env) {
			appendConsent(t, e.state, grant(otherText))
		}, client.ErrAuthorizationRequired},
		{"grant in a consent log that no longer verifies", func(t *testing.T, e *env) {
			appendConsent(t, e.state, grant(otherText))
			appendConsent(t, e.state, grant(fileTransfer)) // a real grant...
			p := filepath.Join(e.state, "consent.jsonl")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte("Dr. Ada"), []byte("Dr. Eve"), 1), 0o600) // ...behind an edited entry
		}, client.ErrVerification},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
			if tc.plant != nil {
				tc.plant(t, e)
			}
			if err := e.check(); err != nil {
				t.Fatal(err)
			}
			if err := e.stage(); !errors.Is(err, client.ErrAuthorizationRequired) {
				t.Fatalf("stage: want ErrAuthorizationRequired (exit 4), got %v", err)
			}
			st := e.status()
			if c := st.Components[0]; c.State != client.StateAwaitingAuthorization || *c.Staged != "1.1.0" {
				t.Fatalf("after stage: %+v", c)
			}
			before := e.snap()
			err := e.apply()
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("apply: want %v, got %v", tc.wantErr, err)
			}
			if e.current() != "1.0.0" || slices.Contains(e.active(), fileTransfer.ID) {
				t.Fatalf("gated release activated: current %s, active %v", e.current(), e.active())
			}
			if tc.wantErr == client.ErrVerification && e.snap() != before {
				t.Fatal("a refused apply changed install/ or state.json")
			}
			var notes []client.Notification
			e.do(func(a *client.Agent) error { notes, err = a.Notifications(); return err })
			if !slices.ContainsFunc(notes, func(n client.Notification) bool { return n.Kind == client.NoteAwaitingAuthorization }) {
				t.Errorf("no awaiting-authorization notification: %+v", notes)
			}
		})
	}
}

func TestDeclineInstallsWithFeatureOff(t *testing.T) {
	e := newEnv(t)
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	e.check()
	e.stage()
	if err := e.applyWith(client.ApplyOptions{Decline: []string{fileTransfer.ID}, By: "Dr. Ada"}); err != nil {
		t.Fatal(err)
	}
	if e.current() != "1.1.0" || slices.Contains(e.active(), fileTransfer.ID) {
		t.Fatalf("declined: current %s, active %v", e.current(), e.active())
	}
	if f := e.status().Components[0].Features[0]; f.Consent != client.ConsentDeclined || f.Active {
		t.Fatalf("status feature %+v", f)
	}
}

func TestPHIClassCannotBeRemovedLocally(t *testing.T) {
	// A local list that omits Navios EX only adds classes: still gated.
	e := newEnvWith(t, func(c *client.Config) { c.PHIDeviceClasses = []string{"DxH 900"} })
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	e.check()
	if err := e.stage(); !errors.Is(err, client.ErrAuthorizationRequired) {
		t.Fatalf("want the gate on a Navios EX, got %v", err)
	}
	// A configuration that tries to subtract a class is refused outright.
	p := filepath.Join(e.state, "config.json")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte(`"install_root"`), []byte(`"phi_device_classes_remove": ["Navios EX"], "install_root"`), 1), 0o600)
	if _, err := client.Open(e.state, nil); err == nil || !strings.Contains(err.Error(), "phi_device_classes_remove") {
		t.Fatalf("config with a removal must be refused, got %v", err)
	}
}

func TestNonPHIDeviceActivatesWithoutAsking(t *testing.T) {
	e := newEnvWith(t, func(c *client.Config) { c.DeviceModel = "DxH 900" })
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	e.mustInstall("1.1.0")
	if !slices.Contains(e.active(), fileTransfer.ID) {
		t.Fatalf("phi-devices feature on a non-PHI device must be active, got %v", e.active())
	}
	if f := e.status().Components[0].Features[0]; f.Consent != client.ConsentNotRequired || !f.Active {
		t.Fatalf("status feature %+v", f)
	}
	if _, err := os.Stat(filepath.Join(e.state, "consent.jsonl")); err == nil {
		t.Fatal("nobody was asked, so nothing must be in the consent log")
	}
}

func TestAuthorizeAtPrompt(t *testing.T) {
	e := newEnv(t)
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	e.check()
	e.stage()
	var out bytes.Buffer
	p := &client.TerminalPrompter{In: strings.NewReader("Dr. Ada Lovelace\nyes\n"), Out: &out}
	if err := e.applyWith(client.ApplyOptions{Prompter: p}); err != nil {
		t.Fatal(err)
	}
	shown := out.String()
	for _, want := range []string{component + " 1.1.0", "INST-0042 (Navios EX)", fileTransfer.Title, fileTransfer.Description, "[no]"} {
		if !strings.Contains(shown, want) {
			t.Errorf("prompt does not show %q:\n%s", want, shown)
		}
	}
	if !slices.Contains(e.active(), fileTransfer.ID) {
		t.Fatal("authorized feature is not active")
	}
	var list []client.ConsentStatus
	e.do(func(a *client.Agent) error { var err error; list, err = a.ConsentList(); return err })
	r := list[0]
	if r.Decision != client.DecisionGranted || r.By != "Dr. Ada Lovelace" || !r.Interactive || r.OSUser == "" ||
		r.TextSHA256 != client.FeatureTextSHA256(fileTransfer) || r.Version != "1.1.0" || r.DeviceID != "INST-0042" || !r.Active {
		t.Fatalf("consent record %+v", r)
	}
}

func TestPromptDefaultsToNo(t *testing.T) {
	e := newEnv(t)
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	e.check()
	e.stage()
	p := &client.TerminalPrompter{In: strings.NewReader("\n"), Out: &bytes.Buffer{}, By: "Dr. Ada"}
	if err := e.applyWith(client.ApplyOptions{Prompter: p}); err != nil {
		t.Fatal(err)
	}
	if e.current() != "1.1.0" || slices.Contains(e.active(), fileTransfer.ID) {
		t.Fatalf("an empty answer must leave the feature off: %v", e.active())
	}
}

// TestPromptEndOfInput: a prompt whose input ends before anyone answers is
// "no decision": the release waits (exit 4), nothing is recorded in the
// consent log, and the audit log says nobody answered.
func TestPromptEndOfInput(t *testing.T) {
	e := newEnv(t)
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	e.check()
	e.stage()
	for _, in := range []string{"", "Dr. Ada\n"} {
		p := &client.TerminalPrompter{In: strings.NewReader(in), Out: &bytes.Buffer{}}
		err := e.applyWith(client.ApplyOptions{Prompter: p, Terminal: true})
		if !errors.Is(err, client.ErrAuthorizationRequired) || !strings.Contains(err.Error(), "--authorize "+fileTransfer.ID+" --by NAME") {
			t.Fatalf("input %q: %v, want ErrAuthorizationRequired naming the feature", in, err)
		}
	}
	if e.current() != "" || slices.Contains(e.active(), fileTransfer.ID) {
		t.Fatalf("nothing may be installed or active: current %q, active %v", e.current(), e.active())
	}
	if _, err := os.Stat(filepath.Join(e.state, "consent.jsonl")); err == nil {
		t.Fatal("no answer is not a decision: the consent log must stay empty")
	}
	var audit []client.LogEntry
	e.do(func(a *client.Agent) error { var err error; audit, _, err = a.ExportLogs(); return err })
	n := 0
	for _, en := range audit {
		if strings.Contains(string(en.Entry), string(client.EventConsentNoAnswer)) {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d %q audit entries, want 2", n, client.EventConsentNoAnswer)
	}
}

// TestDecisionRecordsHowItWasGiven: flags and terminal decisions say so.
func TestDecisionRecordsHowItWasGiven(t *testing.T) {
	e := newEnv(t)
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	e.check()
	e.stage()
	if err := e.applyWith(client.ApplyOptions{Decline: []string{fileTransfer.ID}, By: "Dr. Ada"}); err != nil {
		t.Fatal(err)
	}
	var list []client.ConsentStatus
	e.do(func(a *client.Agent) error { var err error; list, err = a.ConsentList(); return err })
	if r := list[0]; r.Method != client.MethodFlags || r.Terminal || r.Interactive || r.OSUser == "" {
		t.Fatalf("flags decision recorded as %+v", r)
	}
	p := &client.TerminalPrompter{In: strings.NewReader("yes\n"), Out: &bytes.Buffer{}, By: "Dr. Ada"}
	e.publishFeatures("1.2.0", []repo.Feature{func() repo.Feature { f := fileTransfer; f.Description += " New wording."; return f }()})
	e.check()
	e.stage()
	if err := e.applyWith(client.ApplyOptions{Prompter: p, Terminal: true}); err != nil {
		t.Fatal(err)
	}
	e.do(func(a *client.Agent) error { var err error; list, err = a.ConsentList(); return err })
	if r := list[0]; r.Method != client.MethodTerminal || !r.Terminal || !r.Interactive || r.Version != "1.2.0" {
		t.Fatalf("terminal decision recorded as %+v", r)
	}
}

func TestAuthorizeRevokeAndReask(t *testing.T) {
	e := newEnv(t)
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	e.check()
	e.stage()
	if err := e.applyWith(client.ApplyOptions{Authorize: []string{fileTransfer.ID}}); err == nil {
		t.Fatal("--authorize without --by must be refused")
	}
	if err := e.applyWith(client.ApplyOptions{Authorize: []string{"remote-control"}, By: "x"}); err == nil {
		t.Fatal("--authorize of an unknown feature must be refused")
	}
	if err := e.applyWith(client.ApplyOptions{Authorize: []string{fileTransfer.ID}, By: "Dr. Ada"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(e.active(), fileTransfer.ID) {
		t.Fatal("not active after --authorize")
	}

	// Revoke: off at once, same version still installed.
	verDir, _ := os.Stat(filepath.Join(e.install, component, "1.1.0"))
	if err := e.do(func(a *client.Agent) error { return a.Revoke(component, fileTransfer.ID, "Dr. Ada", false) }); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(e.active(), fileTransfer.ID) || e.current() != "1.1.0" {
		t.Fatalf("after revoke: active %v, current %s", e.active(), e.current())
	}
	if again, _ := os.Stat(filepath.Join(e.install, component, "1.1.0")); !os.SameFile(verDir, again) {
		t.Fatal("revoke reinstalled the component")
	}
	if f := e.status().Components[0].Features[0]; f.Consent != client.ConsentRevoked {
		t.Fatalf("status after revoke %+v", f)
	}
	// Authorize again with nothing staged: the installed release's feature comes back.
	if err := e.applyWith(client.ApplyOptions{Authorize: []string{fileTransfer.ID}, By: "Dr. Ada"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(e.active(), fileTransfer.ID) {
		t.Fatal("re-authorized feature is not active")
	}

	// Same text in 1.2.0: the grant carries over.
	e.publishFeatures("1.2.0", []repo.Feature{fileTransfer})
	e.mustInstall("1.2.0")
	if !slices.Contains(e.active(), fileTransfer.ID) {
		t.Fatal("grant for unchanged text was not kept")
	}
	// Changed text in 1.3.0: ask again.
	changed := fileTransfer
	changed.Description += " Transfers are now also allowed for log files of the instrument."
	e.publishFeatures("1.3.0", []repo.Feature{changed})
	e.check()
	if err := e.stage(); !errors.Is(err, client.ErrAuthorizationRequired) {
		t.Fatalf("changed text must be asked again, got %v", err)
	}
	if err := e.apply(); !errors.Is(err, client.ErrAuthorizationRequired) || e.current() != "1.2.0" {
		t.Fatalf("apply with changed text: %v, current %s", err, e.current())
	}
	var rep *client.AuditReport
	if err := e.do(func(a *client.Agent) error { var err error; rep, err = a.VerifyLogs(); return err }); err != nil || rep.ConsentEntries != 3 {
		t.Fatalf("logs: %+v %v", rep, err)
	}
}

func TestNotificationsAndHook(t *testing.T) {
	hookOut := filepath.Join(t.TempDir(), "hook.jsonl")
	e := newEnvWith(t, func(c *client.Config) {
		c.NotifyCommand = []string{"sh", "-c", "cat >> " + hookOut + "; echo >> " + hookOut}
	})
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	for i := 0; i < 2; i++ { // twice: no repeats
		e.check()
		e.stage()
	}
	b, _ := os.ReadFile(hookOut)
	if n := strings.Count(string(b), `"kind":"awaiting-authorization"`); n != 1 {
		t.Fatalf("hook saw awaiting-authorization %d times:\n%s", n, b)
	}
	if err := e.applyWith(client.ApplyOptions{Authorize: []string{fileTransfer.ID}, By: "Dr. Ada"}); err != nil {
		t.Fatal(err)
	}
	var notes []client.Notification
	e.do(func(a *client.Agent) error { var err error; notes, err = a.Notifications(); return err })
	var kinds []client.NoteKind
	for _, n := range notes {
		kinds = append(kinds, n.Kind)
	}
	if slices.Contains(kinds, client.NoteAwaitingAuthorization) || slices.Contains(kinds, client.NoteUpdateAvailable) || !slices.Contains(kinds, client.NoteInstalled) {
		t.Fatalf("after install, notifications are %v", kinds)
	}
}

func TestSignedPolicyDecidesPHIClasses(t *testing.T) {
	e := newEnvWith(t, func(c *client.Config) { c.DeviceModel = "DxH 900" })
	policy := filepath.Join(e.dir, "devices.json")
	os.WriteFile(policy, []byte(`{"phi_device_classes": ["Navios EX", "DxFLEx", "Data Innovations Instrument Manager", "AQUIOS CL", "CellMek SPS", "Navios", "DxH 900"], "version": 1}`), 0o644)
	if _, changed, err := publisher.SetPolicy(context.Background(), e.store, e.keys, e.trust, publisher.PolicyOptions{File: policy, Sign: e.codeSigner(e.pki.Leaf)}); err != nil || !changed {
		t.Fatalf("policy set: %v %v", changed, err)
	}
	e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if !e.status().Device.PHI {
		t.Fatal("a class added by the signed policy must make the device PHI")
	}
	if err := e.stage(); !errors.Is(err, client.ErrAuthorizationRequired) {
		t.Fatalf("want the gate, got %v", err)
	}
}
