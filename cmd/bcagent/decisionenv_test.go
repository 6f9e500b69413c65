package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

// decisionFlags are the flags that record a consent decision or name who
// made it: they must never read the environment (issue 21).
var decisionFlags = map[string][]string{
	"apply":          {"authorize", "decline", "by"},
	"consent revoke": {"feature", "by"},
	// Who ended an alert, and why (a possible attack is never ended by a
	// variable left in a service's environment).
	"notifications ack": {"by", "reason"},
}

func TestDecisionFlagsHaveNoEnvVars(t *testing.T) {
	app := newApp(os.Stdout, os.Stderr)
	seen := 0
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			name := strings.TrimSpace(prefix + " " + c.Name)
			for _, f := range c.Flags {
				for _, n := range f.Names() {
					if !slices.Contains(decisionFlags[name], n) {
						continue
					}
					seen++
					if ev, ok := f.(interface{ GetEnvVars() []string }); ok && len(ev.GetEnvVars()) > 0 {
						t.Errorf("bcagent %s --%s reads the environment (%v): a consent decision must come from a person", name, n, ev.GetEnvVars())
					}
				}
			}
			walk(name, c.Subcommands)
		}
	}
	walk("", app.Commands)
	if seen != 7 {
		t.Fatalf("found %d decision flags, want 7: the table above is out of date", seen)
	}
}

// TestEnvironmentCannotAuthorize: with the old variables set, neither apply
// nor the service turns a gated feature on; the release waits (exit 4) and
// the agent says it ignores them.
func TestEnvironmentCannotAuthorize(t *testing.T) {
	fx := newFixture(t)
	feature := repo.Feature{ID: "phi-file-transfer", Title: "File transfer", Description: "Files may hold PHI.", Consent: repo.ConsentPHIDevices}
	fx.publish("1.2.0", feature)
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	for _, v := range []string{"BCAGENT_AUTHORIZE", "BCAGENT_FEATURE"} {
		t.Setenv(v, "phi-file-transfer")
	}
	t.Setenv("BCAGENT_BY", "nobody")
	state := filepath.Join(fx.dir, "agent")
	if code, _, errOut := bcagent(t, "--state", state, "init", "--repo-url", srv.URL, "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"),
		"--trust", fx.pki.TrustDir, "--component", "notification-client", "--device-id", "INST-7", "--device-model", "Navios EX",
		"--platform", "linux-amd64", "--policy", "notification-client=auto"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	code, _, errOut := bcagent(t, "--state", state, "run", "--cycles", "1", "--interval", "1h")
	if code != 0 {
		t.Fatalf("run: exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "ignoring BCAGENT_AUTHORIZE, BCAGENT_BY, BCAGENT_FEATURE in the environment") {
		t.Fatalf("no warning about the ignored variables: %s", errOut)
	}
	code, _, errOut = bcagent(t, "--state", state, "apply")
	if code != 4 || !strings.Contains(errOut, "--authorize phi-file-transfer --by NAME") {
		t.Fatalf("apply with the variables set: exit %d (want 4): %s", code, errOut)
	}
	_, out, _ := bcagent(t, "--state", state, "status", "--json")
	var st struct {
		Components []struct {
			State     string  `json:"state"`
			Installed *string `json:"installed"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if c := st.Components[0]; c.State != "awaiting-authorization" || c.Installed != nil {
		t.Fatalf("status: %s", out)
	}
	if _, err := os.Stat(filepath.Join(state, "install", "notification-client", "features.json")); !os.IsNotExist(err) {
		t.Fatalf("features.json was written: %v", err)
	}
	_, out, _ = bcagent(t, "--state", state, "consent", "list")
	if !strings.Contains(out, "no consent decisions") {
		t.Fatalf("consent list: %s", out)
	}
}
