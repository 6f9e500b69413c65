package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	// An offline PC has had no check of its repository: status says so.
	expect(t, 1, []string{"up-to-date (installed 1.0.0)", "no check of the repository has succeeded yet"}, "--state", state, "status")
}
