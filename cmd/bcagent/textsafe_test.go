package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// rawControls are what must never reach a terminal from untrusted text.
const rawControls = "\x1b\r\u009b\u202e\u2066\u200b"

func noRawControls(t *testing.T, what, s string) {
	t.Helper()
	if strings.ContainsAny(s, rawControls) {
		t.Fatalf("%s shows control characters raw:\n%q", what, s)
	}
}

// treeSnapshot is every path under dir with its content (nil for a
// directory), so a test can tell that a refused command changed nothing.
func treeSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == "agent.lock" {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			snap[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		snap[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, b := range before {
		if a, ok := after[p]; !ok || a != b {
			t.Errorf("%s changed %s", what, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s created %s", what, p)
		}
	}
}

func TestInitRefusesControlsInNames(t *testing.T) {
	fx := newFixture(t)
	root := filepath.Join(fx.store.Dir, "metadata", "1.root.json")
	cases := []struct {
		name string
		flag string
		args []string
	}{
		{"erase line in model", "--device-model", []string{"--device-id", "INST-1", "--device-model", "DxH 900\x1b[2K"}},
		{"newline in model", "--device-model", []string{"--device-id", "INST-1", "--device-model", "DxH 900\ndeclined by Ann"}},
		{"bidi override in id", "--device-id", []string{"--device-id", "INST-\u202e1", "--device-model", "DxH 900"}},
		{"cursor up in PHI class", "--phi-device-class", []string{"--device-id", "INST-1", "--device-model", "DxH 900", "--phi-device-class", "DxH\x1b[1A"}},
		{"zero-width space in host", "--allow-host", []string{"--device-id", "INST-1", "--device-model", "DxH 900", "--allow-host", "cdn\u200b.example.com"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "agent")
			args := append([]string{"--state", state, "init", "--repo-url", "http://127.0.0.1:1", "--root", root,
				"--trust", fx.pki.TrustDir, "--component", "notification-client", "--platform", "linux-amd64"}, tc.args...)
			code, out, errOut := bcagent(t, args...)
			if code != exitUsage || !strings.Contains(errOut, tc.flag+": U+") {
				t.Fatalf("exit %d (want 2)\nstdout: %s\nstderr: %s\nwant the error to name %s", code, out, errOut, tc.flag)
			}
			if strings.Count(errOut, "\n") != 1 {
				t.Fatalf("the error is not one line: %q", errOut)
			}
			noRawControls(t, "the error", errOut)
			if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a refused init created %s (%v)", state, err)
			}
		})
	}
}

func TestApplyRefusesControlsInBy(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.2.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	state := filepath.Join(fx.dir, "agent")
	if code, out, errOut := bcagent(t, "--state", state, "init", "--repo-url", srv.URL, "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"),
		"--trust", fx.pki.TrustDir, "--component", "notification-client", "--device-id", "INST-7", "--device-model", "AQUIOS CL", "--platform", "linux-amd64"); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	// A staged release: --by is checked before anything else, so whether
	// the feature is gated does not matter, and nothing may be installed.
	if code, _, errOut := bcagent(t, "--state", state, "stage"); code != 0 {
		t.Fatalf("stage: exit %d: %s", code, errOut)
	}
	before := treeSnapshot(t, state)
	for _, by := range []string{"Ann\x1b[1A", "Ann\x1b[1A\x1b[2K\rdeclined by Bob", "Ann\u202e"} {
		for _, decision := range []string{"--authorize", "--decline"} {
			code, out, errOut := bcagent(t, "--state", state, "apply", decision, "phi-file-transfer", "--by", by)
			if code != exitUsage || !strings.Contains(errOut, "--by: U+") {
				t.Fatalf("apply %s --by %q: exit %d (want 2)\nstdout: %s\nstderr: %s", decision, by, code, out, errOut)
			}
			noRawControls(t, "the error", errOut)
		}
		code, _, errOut := bcagent(t, "--state", state, "consent", "revoke", "--component", "notification-client", "--feature", "phi-file-transfer", "--by", by)
		if code != exitUsage {
			t.Fatalf("consent revoke --by %q: exit %d (want 2): %s", by, code, errOut)
		}
		noRawControls(t, "the error", errOut)
	}
	sameTree(t, "a refused apply", before, treeSnapshot(t, state))
	if _, out, _ := bcagent(t, "--state", state, "consent", "list"); !strings.Contains(out, "no consent decisions") {
		t.Fatalf("consent list after refused decisions: %s", out)
	}
	if _, out, _ := bcagent(t, "--state", state, "status"); !strings.Contains(out, "installed nothing, staged 1.2.0") {
		t.Fatalf("status after refused decisions: %s", out)
	}
}

// writeChainLog writes entries as a hash-chained log and its head, the
// way an older agent (which took any --by) left them.
func writeChainLog(t *testing.T, path string, entries ...any) {
	t.Helper()
	var buf bytes.Buffer
	prev := ""
	for i, e := range entries {
		body, _ := json.Marshal(e)
		line, _ := json.Marshal(map[string]any{"seq": i + 1, "prev": prev, "entry": json.RawMessage(body)})
		s := sha256.Sum256(line)
		prev = hex.EncodeToString(s[:])
		buf.Write(append(line, '\n'))
	}
	head, _ := json.Marshal(map[string]any{"seq": len(entries), "hash": prev})
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".head", head, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A consent log written before names were checked can hold escape
// sequences: consent list, audit export and notifications show them
// escaped, so a forged "declined by …" row cannot appear or erase the real
// one; --json stays JSON, which escapes them itself.
func TestLoggedControlsAreEscaped(t *testing.T) {
	fx := newFixture(t)
	state := filepath.Join(fx.dir, "agent")
	if code, out, errOut := bcagent(t, "--state", state, "init", "--repo-url", "http://127.0.0.1:1", "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"),
		"--trust", fx.pki.TrustDir, "--component", "notification-client", "--device-id", "INST-7", "--device-model", "AQUIOS CL", "--platform", "linux-amd64"); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	evil := "Mallory\x1b[2K\r\x1b[1Anotification-client  phi-file-transfer  declined  false  Ann\u202e"
	rec := client.ConsentRecord{Time: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), Decision: client.DecisionGranted, By: evil, OSUser: "lab\x1b[8m",
		DeviceID: "INST-7", DeviceModel: "AQUIOS CL", Component: "notification-client", Version: "1.2.0", Feature: "phi-file-transfer"}
	writeChainLog(t, filepath.Join(state, "consent.jsonl"), rec)
	writeChainLog(t, filepath.Join(state, "audit.jsonl"), client.AuditEvent{Time: rec.Time, Event: client.EventConsentDecision, Device: "INST-7",
		Component: "notification-client", Feature: "phi-file-transfer", Decision: client.DecisionGranted, By: evil})
	notes, _ := json.Marshal(map[string]any{"active": []client.Notification{{ID: "n1", Kind: client.NoteFailed, Severity: "warning",
		Message: "server said: \x1b]0;owned\a\x1b[2Jall clear", Since: rec.Time}}})
	if err := os.WriteFile(filepath.Join(state, "notifications.json"), notes, 0o600); err != nil {
		t.Fatal(err)
	}

	escaped := `Mallory\x1b[2K\r\x1b[1Anotification-client  phi-file-transfer  declined  false  Ann\u202e`
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"consent", "list"}, []string{escaped, `lab\x1b[8m`, "granted"}},
		{[]string{"audit", "export"}, []string{`by="` + escaped + `"`}},
		{[]string{"notifications"}, []string{`server said: \x1b]0;owned\x07\x1b[2Jall clear`}},
	} {
		code, out, errOut := bcagent(t, append([]string{"--state", state}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		noRawControls(t, strings.Join(tc.args, " "), out)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Fatalf("%v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
	if got := strings.Count(mustRun(t, "--state", state, "consent", "list"), "\n"); got != 2 {
		t.Fatalf("consent list prints %d lines, want a header and one row", got)
	}

	// --json is JSON: the name comes back exactly as recorded.
	out := mustRun(t, "--state", state, "consent", "list", "--json")
	noRawControls(t, "consent list --json", out)
	var list []client.ConsentStatus
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].By != evil {
		t.Fatalf("consent list --json = %s (%v)", out, err)
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := bcagent(t, args...)
	if code != 0 {
		t.Fatalf("bcagent %v: exit %d: %s", args, code, errOut)
	}
	return out
}

// Text the agent did not check itself (state, metadata, a server's error)
// is escaped by every printer.
func TestOutputEscapes(t *testing.T) {
	ptr := func(s string) *string { return &s }
	st := &client.StatusReport{
		Device:     client.DeviceStatus{ID: "INST\x1b[2K", Model: "Navios\u202eXE", PHI: true},
		Repository: client.RepositoryStatus{URL: "https://u.example.com/\u2066x"},
		Components: []client.ComponentStatus{{Name: "nc\r", Installed: ptr("1.0.0\x1b[1A"), Staged: ptr("1.1.0\u009b"), State: "failed\x1b[8m",
			Features: []client.FeatureStatus{{ID: "f\u200b", Consent: "pending\x1b[2K"}}}},
	}
	var b bytes.Buffer
	printStatus(&b, st)
	noRawControls(t, "status", b.String())
	for _, w := range []string{`device INST\x1b[2K (Navios\u202eXE, holds PHI)`, `nc\r: failed\x1b[8m (installed 1.0.0\x1b[1A, staged 1.1.0\u009b, feature f\u200b off (consent pending\x1b[2K))`} {
		if !strings.Contains(b.String(), w) {
			t.Fatalf("status lacks %q:\n%s", w, b.String())
		}
	}
	if got := featureLine(st, 0); got != `; off: f\u200b (pending\x1b[2K)` {
		t.Fatalf("featureLine = %q", got)
	}

	b.Reset()
	describe(&b, "check", &client.CheckReport{Components: []client.ComponentReport{{Name: "nc\x1b[2K", State: client.StateUpdateAvailable, Available: "2.0.0\r"}}})
	noRawControls(t, "check", b.String())
	if want := `nc\x1b[2K: 2.0.0\r available (installed: nothing)`; !strings.Contains(b.String(), want) {
		t.Fatalf("check output %q lacks %q", b.String(), want)
	}

	b.Reset()
	if err := printConsentList(&b, []client.ConsentStatus{{ConsentRecord: client.ConsentRecord{Component: "nc", Feature: "f", Decision: "granted", By: "Ann\x1b[1A\rdeclined", Version: "1.0.0\u2066"}}}); err != nil {
		t.Fatal(err)
	}
	noRawControls(t, "consent list", b.String())
	if !strings.Contains(b.String(), `Ann\x1b[1A\rdeclined`) || !strings.Contains(b.String(), `1.0.0\u2066`) {
		t.Fatalf("consent list:\n%s", b.String())
	}
}

// The one stderr line of an error is escaped: an error may quote a name
// or path the agent was given.
func TestErrorLineEscaped(t *testing.T) {
	state := filepath.Join(t.TempDir(), "agent\x1b[2K\u202e")
	code, _, errOut := bcagent(t, "--state", state, "status")
	if code == 0 {
		t.Fatalf("status on a missing state directory succeeded")
	}
	noRawControls(t, "the error", errOut)
	if !strings.Contains(errOut, `agent\x1b[2K\u202e`) || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("error line %q: want one line naming the state directory escaped", errOut)
	}
}
