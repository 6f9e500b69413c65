package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// TestSelfUpdate: the running bcagent 1.0.0 replaces itself with 1.1.0;
// a broken 1.2.0 (it reports another version) is rolled back.
func TestSelfUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent three times")
	}
	v100, v110, broken := buildAgent(t, "1.0.0"), buildAgent(t, "1.1.0"), buildAgent(t, "7.7.7")
	e := newEnvWith(t, func(c *client.Config) { c.Components = []string{"bcagent"} })
	self := filepath.Join(t.TempDir(), "bin", "bcagent")
	os.MkdirAll(filepath.Dir(self), 0o755)
	copyFile(t, v100, self, 0o755)
	agent := func(args ...string) (string, error) {
		out, err := exec.Command(self, append([]string{"--state", e.state}, args...)...).CombinedOutput()
		return string(out), err
	}
	publishAgent := func(v, bin string) {
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		e.publishWith(v, "bcagent", data, func(o *publisher.ReleaseOptions) {
			o.Component = "bcagent"
			o.Install = "self"
		})
	}
	publishAgent("1.1.0", v110)
	for _, cmd := range []string{"check", "stage", "apply"} {
		if out, err := agent(cmd); err != nil {
			t.Fatalf("bcagent %s: %v\n%s", cmd, err, out)
		}
	}
	if out, _ := exec.Command(self, "--version").Output(); !strings.Contains(string(out), "1.1.0") {
		t.Fatalf("after the self-update the binary says %q", out)
	}
	if out, _ := exec.Command(self+".old", "--version").Output(); !strings.Contains(string(out), "1.0.0") {
		t.Fatalf("the old binary was not kept: %q", out)
	}

	publishAgent("1.2.0", broken)
	agent("check")
	agent("stage")
	out, err := agent("apply")
	if err == nil || !strings.Contains(out, "did not come up") {
		t.Fatalf("a broken new binary must be refused: %v\n%s", err, out)
	}
	if out, _ := exec.Command(self, "--version").Output(); !strings.Contains(string(out), "1.1.0") {
		t.Fatalf("the broken binary was not rolled back: %q", out)
	}
	if out, _ := agent("status"); !strings.Contains(out, "failed") {
		t.Fatalf("status after the rollback: %s", out)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}
