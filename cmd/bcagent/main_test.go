package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

func bcagent(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"bcagent"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// fixture is a directory repository and a way to publish into it.
type fixture struct {
	dir     string
	pki     *testutil.PKI
	store   *publisher.DirStore
	publish func(v string, features ...repo.Feature) *publisher.ReleaseResult
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	publisher.GenerateKeys(filepath.Join(dir, "keys"), signer.KeyTypeEd25519)
	keys, err := publisher.LoadKeys(filepath.Join(dir, "keys"), repo.TopLevelRoles...)
	if err != nil {
		t.Fatal(err)
	}
	pki := testutil.NewPKI(t)
	trust, _ := signer.LoadTrust(pki.TrustDir)
	store := &publisher.DirStore{Dir: filepath.Join(dir, "repo")}
	if _, err := publisher.Init(ctx, store, keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, pki: pki, store: store, publish: func(v string, features ...repo.Feature) *publisher.ReleaseResult {
		data := testutil.TarGz(t, testutil.TarEntry{Name: "VERSION", Body: v + "\n"})
		f := filepath.Join(dir, "nc-"+v+".tar.gz")
		os.WriteFile(f, data, 0o644)
		sig, _ := signer.SignDetached(bytes.NewReader(data), pki.Leaf.Chain, pki.Leaf.Key)
		os.WriteFile(f+".p7s", sig, 0o644)
		res, err := publisher.AddRelease(ctx, store, keys, trust, publisher.ReleaseOptions{
			Component: "notification-client", Version: v, Platform: "linux-amd64", File: f, Features: features,
			GateSign: func(m []byte) ([]byte, error) {
				return signer.SignDetached(bytes.NewReader(m), pki.Leaf.Chain, pki.Leaf.Key)
			}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}}
}

func TestCLI(t *testing.T) {
	fx := newFixture(t)
	dir, pki, store, publish := fx.dir, fx.pki, fx.store, fx.publish
	publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(store, nil))
	defer srv.Close()
	state := filepath.Join(dir, "agent")

	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--state", state, "check"}, 1, "run bcagent init"},
		{[]string{"--state", state, "init", "--repo-url", srv.URL}, 2, "--root, --trust, --component, --device-id and --device-model are required"},
		{[]string{"--state", state, "init", "--repo-url", "http://updates.example.com", "--root", filepath.Join(store.Dir, "metadata", "1.root.json"),
			"--trust", pki.TrustDir, "--component", "notification-client", "--device-id", "INST-1", "--device-model", "DxH 900"}, 2, "plain http is refused"},
		{[]string{"--state", state, "init", "--repo-url", srv.URL, "--root", filepath.Join(store.Dir, "metadata", "1.root.json"),
			"--trust", pki.TrustDir, "--component", "notification-client", "--device-id", "INST-1", "--device-model", "DxH 900", "--platform", "linux-amd64"}, 0, "initialized agent state"},
		{[]string{"--state", state, "check"}, 0, "notification-client: 1.0.0 available (installed: nothing)"},
		{[]string{"--state", state, "stage", "--component", "remote-support"}, 2, "not one of this agent's components"},
		{[]string{"--state", state, "stage"}, 0, "1.0.0 staged and verified"},
		{[]string{"--state", state, "apply"}, 0, "notification-client: installed 1.0.0 (was nothing)"},
		{[]string{"--state", state, "apply"}, 0, "nothing staged to apply"},
		{[]string{"--state", state, "status"}, 0, "notification-client: up-to-date (installed 1.0.0)"},
		{[]string{"--state", state, "check", "--bogus"}, 2, "unknown flag --bogus for bcagent check"},
		{[]string{"--state", state, "rollback", "--component", "notification-client"}, 1, "no previous version"},
		{[]string{"--state", state, "pin", "--component", "notification-client", "--version", "1.0"}, 2, "--version"},
		{[]string{"--state", state, "pin", "--component", "notification-client", "--version", "1.0.0"}, 0, "pinned to 1.0.0"},
		{[]string{"--state", state, "status", "--json"}, 0, `"pinned": "1.0.0"`},
		{[]string{"--state", state, "unpin", "--component", "notification-client"}, 0, "follows its channel again"},
	}
	for _, s := range steps {
		code, out, errOut := bcagent(t, s.args...)
		where := out
		if s.code != 0 {
			where = errOut
		}
		if code != s.code || !strings.Contains(where, s.out) {
			t.Fatalf("bcagent %v: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", s.args, code, s.code, out, errOut, s.out)
		}
	}

	// status --json has DESIGN.md's shape.
	_, out, _ := bcagent(t, "--state", state, "status", "--json")
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	dev := st["device"].(map[string]any)
	comp := st["components"].([]any)[0].(map[string]any)
	if dev["id"] != "INST-1" || dev["phi"] != false || comp["installed"] != "1.0.0" || comp["state"] != "up-to-date" || comp["staged"] != nil {
		t.Fatalf("status --json: %s", out)
	}

	// A replaced artifact on the server: exit 3, nothing installed.
	res := publish("1.1.0")
	p := filepath.Join(store.Dir, "targets", filepath.FromSlash(repo.ConsistentName(res.Path, res.SHA256)))
	os.WriteFile(p, []byte("evil"), 0o644)
	code, _, errOut := bcagent(t, "--state", state, "stage")
	if code != 3 || !strings.Contains(errOut, "this may be an attack") {
		t.Fatalf("tampered artifact: exit %d: %s", code, errOut)
	}
	if _, out, _ := bcagent(t, "--state", state, "status"); !strings.Contains(out, "installed 1.0.0") {
		t.Fatalf("status after refused stage: %s", out)
	}
}

func TestCLIConsent(t *testing.T) {
	fx := newFixture(t)
	dir, pki, store := fx.dir, fx.pki, fx.store
	feature := repo.Feature{ID: "phi-file-transfer", Title: "File transfer", Description: "Files may hold PHI.", Consent: repo.ConsentPHIDevices}
	fx.publish("1.2.0", feature)
	srv := httptest.NewServer(publisher.Handler(store, nil))
	defer srv.Close()
	state := filepath.Join(dir, "agent")
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--state", state, "init", "--repo-url", srv.URL, "--root", filepath.Join(store.Dir, "metadata", "1.root.json"),
			"--trust", pki.TrustDir, "--component", "notification-client", "--device-id", "INST-7", "--device-model", "AQUIOS CL", "--platform", "linux-amd64"}, 0, "initialized"},
		{[]string{"--state", state, "stage"}, 4, "a person must authorize a feature first"},
		{[]string{"--state", state, "status"}, 4, "health: awaiting-authorization (exit 4)"},
		{[]string{"--state", state, "notifications"}, 0, "waits for a person to authorize"},
		{[]string{"--state", state, "apply", "--no-prompt"}, 4, "phi-file-transfer"},
		{[]string{"--state", state, "apply", "--authorize", "phi-file-transfer"}, 2, "--by NAME is required"},
		{[]string{"--state", state, "apply", "--authorize", "remote-control", "--by", "Ann"}, 2, "not a gated feature"},
		{[]string{"--state", state, "apply", "--authorize", "phi-file-transfer", "--by", "Ann"}, 0, "installed 1.2.0 (was nothing); active: phi-file-transfer"},
		{[]string{"--state", state, "consent", "list"}, 0, "granted   true"},
		{[]string{"--state", state, "consent", "revoke", "--component", "notification-client", "--feature", "phi-file-transfer", "--by", "Ann"}, 0, "revoked by Ann and deactivated"},
		{[]string{"--state", state, "status"}, 0, "feature phi-file-transfer off (consent revoked)"},
		{[]string{"--state", state, "audit", "verify"}, 0, "2 consent entries"},
		{[]string{"--state", state, "audit", "export"}, 0, "event=consent-revoked"},
	}
	for _, s := range steps {
		code, out, errOut := bcagent(t, s.args...)
		where := out
		if s.code != 0 && s.args[2] != "status" { // status reports on stdout whatever its verdict
			where = errOut
		}
		if code != s.code || !strings.Contains(where, s.out) {
			t.Fatalf("bcagent %v: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", s.args, code, s.code, out, errOut, s.out)
		}
	}
	// Tamper with the consent log: audit verify names the entry and exits 3.
	p := filepath.Join(state, "consent.jsonl")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte(`"by":"Ann"`), []byte(`"by":"Bob"`), 1), 0o600)
	code, _, errOut := bcagent(t, "--state", state, "audit", "verify")
	if code != 3 || !strings.Contains(errOut, "entry 2 does not follow entry 1") {
		t.Fatalf("tampered consent log: exit %d: %s", code, errOut)
	}
}
