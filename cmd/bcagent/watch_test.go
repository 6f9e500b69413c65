package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIWatchBadInputs: run --watch takes an existing directory outside
// the state directory; anything else is one line and exit 2, before the
// service starts. config set watch_dir checks the same, and config show
// lists it.
func TestCLIWatchBadInputs(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	state, _ := initAgent(t, fx, "http://127.0.0.1:1", "--component", "notification-client")
	file := filepath.Join(t.TempDir(), "bundle.bcbundle")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-folder")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing folder", []string{"--watch", missing}, "--watch " + missing + ": no such directory"},
		{"a file", []string{"--watch", file}, "--watch " + file + " is a file, not a directory"},
		{"empty", []string{"--watch", ""}, "--watch needs a DIR"},
		{"the state directory", []string{"--watch", state}, "inside the agent's state directory"},
		{"inside the state directory", []string{"--watch", filepath.Join(state, "tuf")}, "inside the agent's state directory"},
	} {
		out := expect(t, 2, []string{tc.want}, append([]string{"--state", state, "run", "--cycles", "1"}, tc.args...)...)
		if strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%s: not one line: %q", tc.name, out)
		}
		if strings.Contains(out, "serving") {
			t.Errorf("%s: the service started: %q", tc.name, out)
		}
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("BCAGENT_WATCH", missing)
		expect(t, 2, []string{"--watch " + missing + ": no such directory"}, "--state", state, "run", "--cycles", "1")
	})

	drop := t.TempDir()
	for _, tc := range []struct {
		value string
		code  int
		want  string
	}{
		{missing, 2, "watch_dir " + missing + ": no such directory"},
		{file, 2, "watch_dir " + file + " is a file, not a directory"},
		{drop, 0, `watch_dir: "" -> "` + drop + `"`},
		{drop, 0, "nothing changed"},
	} {
		out := expect(t, tc.code, []string{tc.want}, "--state", state, "config", "set", "watch_dir", tc.value)
		if tc.code != 0 && (strings.Contains(out, " --") || strings.Count(out, "\n") != 1) {
			t.Errorf("config set watch_dir %s: not one line in config.json's words: %q", tc.value, out)
		}
	}
	expect(t, 0, []string{"watch_dir", drop}, "--state", state, "config", "show")
	expect(t, 0, []string{"event=config-changed", "watch_dir"}, "--state", state, "audit", "export")
}
