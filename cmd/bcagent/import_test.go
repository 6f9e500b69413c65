package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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
	keys, err := publisher.LoadKeys(filepath.Join(fx.dir, "keys"), repo.RoleTargets)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(fx.dir, "nc.bcbundle")
	if _, err := publisher.CreateBundle(context.Background(), fx.store, keys, publisher.BundleOptions{
		Components: []string{"notification-client"}, Platform: "linux-amd64", Version: "1.0.0", Out: good}); err != nil {
		t.Fatal(err)
	}
	state, _ := initAgent(t, fx, "http://127.0.0.1:1", "--component", "notification-client")
	random := filepath.Join(fx.dir, "random.bcbundle")
	os.WriteFile(random, []byte(strings.Repeat("x", 4096)), 0o644)
	out := expect(t, 3, []string{"not a bcupdate bundle"}, "--state", state, "import", random)
	if strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Errorf("refusal is more than one line: %q", out)
	}
	expect(t, 2, []string{"takes one FILE"}, "--state", state, "import")
	expect(t, 2, []string{"no-such.bcbundle"}, "--state", state, "import", filepath.Join(fx.dir, "no-such.bcbundle"))
	expect(t, 0, []string{"verified", "1.0.0 staged"}, "--state", state, "import", good)
	expect(t, 0, nil, "--state", state, "apply")
	// An offline PC: its checks fail (the repository cannot be reached),
	// and its freshness is the bundle it imported, whose window is open:
	// status is healthy and says where its freshness comes from.
	expect(t, 1, []string{"cannot reach"}, "--state", state, "check")
	out = expect(t, 0, []string{"up-to-date (installed 1.0.0)", "last import: ", "bundle nc.bcbundle (made ", ", valid until ", "): staged notification-client 1.0.0", "health: ok"}, "--state", state, "status")
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
}
