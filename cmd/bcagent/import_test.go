package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

// TestCLIImport: bcagent import of a bundle stages it on a PC whose
// repository cannot be reached and apply installs it; a foreign file is
// exit 3 in one line, a missing FILE exit 2.
func TestCLIImport(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	good := fx.bundle(t, "1.0.0")
	state, _ := initAgent(t, fx, "http://127.0.0.1:1", "--component", "notification-client")
	random := filepath.Join(fx.dir, "random.bcbundle")
	os.WriteFile(random, []byte(strings.Repeat("x", 4096)), 0o644)
	expect(t, 2, []string{"takes one FILE"}, "--state", state, "import")
	expect(t, 2, []string{"no-such.bcbundle"}, "--state", state, "import", filepath.Join(fx.dir, "no-such.bcbundle"))
	expect(t, 0, []string{"verified", "1.0.0 staged"}, "--state", state, "import", good)
	expect(t, 0, nil, "--state", state, "apply")
	// An offline PC: its checks fail (the repository cannot be reached),
	// and its freshness is the bundle it imported, whose window is open:
	// status is healthy and says where its freshness comes from.
	expect(t, 1, []string{"cannot reach"}, "--state", state, "check")
	out := expect(t, 0, []string{"up-to-date (installed 1.0.0)", "last import: ", "bundle nc.bcbundle (made ", ", valid until ", "): staged notification-client 1.0.0", "health: ok"}, "--state", state, "status")
	if strings.Contains(out, "no check of the repository has succeeded") {
		t.Errorf("status of a PC that lives on bundles still asks for a check:\n%s", out)
	}
	out = expect(t, 0, nil, "--state", state, "status", "--json")
	var st struct {
		Health     string `json:"health"`
		LastImport *struct {
			Bundle  string    `json:"bundle"`
			Created time.Time `json:"created"`
			Expires time.Time `json:"expires"`
			Outcome string    `json:"outcome"`
			Staged  []string  `json:"staged"`
			Expired bool      `json:"expired"`
		} `json:"last_import"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	li := st.LastImport
	if st.Health != "ok" || li == nil || li.Bundle != "nc.bcbundle" || li.Outcome != "staged" || li.Expired ||
		len(li.Staged) != 1 || li.Staged[0] != "notification-client 1.0.0" || !li.Expires.After(li.Created) {
		t.Errorf("status --json: health %q, last_import %+v", st.Health, li)
	}
	// A refused file: exit 3 in one line, and a critical notification
	// that a good bundle imported afterwards does not clear (only a
	// successful online check does).
	out = expect(t, 3, []string{"not a bcupdate bundle"}, "--state", state, "import", random)
	if strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Errorf("refusal is more than one line: %q", out)
	}
	expect(t, 0, []string{"verified", "up to date"}, "--state", state, "import", good)
	expect(t, 3, []string{"health: verification-failure", "not a bcupdate bundle"}, "--state", state, "status")
}

// TestCLIImportUnreadable: a FILE that is no file to read (a directory, a
// FIFO, a device) is a usage error: exit 2, one line naming it, and
// neither an audit entry nor a notification (it is no bundle that failed
// verification). A FIFO is refused at once, not waited on.
func TestCLIImportUnreadable(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	state, _ := initAgent(t, fx, "http://127.0.0.1:1", "--component", "notification-client")
	dir := filepath.Join(fx.dir, "dir.bcbundle")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{dir: "a directory"}
	if fifo := filepath.Join(fx.dir, "fifo.bcbundle"); mkfifo(t, fifo) {
		cases[fifo] = "a FIFO"
	}
	if _, err := os.Stat("/dev/null"); err == nil && runtime.GOOS != "windows" {
		cases["/dev/null"] = "a device"
	}
	for file, want := range cases {
		code, out, errOut := bcagent(t, "--state", state, "import", file)
		if code != 2 || !strings.Contains(errOut, file) || !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("import %s: exit %d, stderr %q (stdout %q), want exit 2 and one line naming it as %s", file, code, errOut, out, want)
		}
	}
	for _, f := range []string{"audit.jsonl", "notifications.json"} {
		data, err := os.ReadFile(filepath.Join(state, f))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "verification-failure") {
			t.Errorf("%s records a verification failure for a FILE that cannot be read:\n%s", f, data)
		}
	}
}

// bundle makes nc.bcbundle, notification-client version for linux-amd64,
// from the fixture's repository (signed with its targets key).
func (fx *fixture) bundle(t *testing.T, version string) string {
	t.Helper()
	keys, err := publisher.LoadKeys(filepath.Join(fx.dir, "keys"), repo.RoleTargets)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(fx.dir, "nc.bcbundle")
	if _, err := publisher.CreateBundle(context.Background(), fx.store, keys, publisher.BundleOptions{
		Components: []string{"notification-client"}, Platform: "linux-amd64", Version: version, Out: out}); err != nil {
		t.Fatal(err)
	}
	return out
}
