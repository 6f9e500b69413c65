package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// initAgent initializes an agent against url for components.
func initAgent(t *testing.T, fx *fixture, url string, extra ...string) (state, stderr string) {
	t.Helper()
	state = filepath.Join(t.TempDir(), "agent")
	args := append([]string{"--state", state, "init", "--repo-url", url, "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"),
		"--trust", fx.pki.TrustDir, "--device-id", "INST-1", "--device-model", "DxH 900", "--platform", "linux-amd64"}, extra...)
	code, _, errOut := bcagent(t, args...)
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	return state, errOut
}

// expect runs bcagent and checks its exit code and that stdout+stderr
// hold every one of want.
func expect(t *testing.T, code int, want []string, args ...string) string {
	t.Helper()
	got, out, errOut := bcagent(t, args...)
	all := out + errOut
	if got != code {
		t.Fatalf("bcagent %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, got, code, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Fatalf("bcagent %v: output lacks %q\nstdout: %s\nstderr: %s", args, w, out, errOut)
		}
	}
	return all
}

// TestUnknownComponentIsNeverUpToDate: a component the repository has no
// release of is named by init, makes check exit 1 and status unhealthy,
// until config set fixes it.
func TestUnknownComponentIsNeverUpToDate(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	state, initErr := initAgent(t, fx, srv.URL, "--component", "notification-client", "--component", "no-such-thing")
	for _, w := range []string{"warning:", `no release of "no-such-thing" for linux-amd64 on channel "stable"`} {
		if !strings.Contains(initErr, w) {
			t.Fatalf("init did not warn %q: %s", w, initErr)
		}
	}
	expect(t, 1, []string{"no-such-thing: no release (installed: nothing)", "component no-such-thing has no release in the repository",
		"notification-client: 1.0.0 available"}, "--state", state, "check")
	expect(t, 1, []string{"no-such-thing: no-release", "health: attention (exit 1)", `no release of "no-such-thing"`}, "--state", state, "status")
	expect(t, 0, []string{"[warning]", `no release of "no-such-thing"`}, "--state", state, "notifications")
	expect(t, 0, []string{`components: "notification-client,no-such-thing" -> "notification-client"`}, "--state", state, "config", "set", "components", "notification-client")
	expect(t, 0, []string{"notification-client: 1.0.0 available"}, "--state", state, "check")
	out := expect(t, 0, []string{"health: ok", "last check: "}, "--state", state, "status")
	if strings.Contains(out, "no-such-thing") {
		t.Fatalf("status still names the removed component: %s", out)
	}
	expect(t, 0, []string{"event=config-changed"}, "--state", state, "audit", "export")
}

// TestStatusSaysWhatWentWrong: an unreachable repository, a verification
// failure and a rollback by hand each show in status, with the exit code
// a monitor needs.
func TestStatusSaysWhatWentWrong(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	state, _ := initAgent(t, fx, srv.URL, "--component", "notification-client")
	expect(t, 1, []string{"health: attention", "no check of the repository has succeeded yet"}, "--state", state, "status")
	expect(t, 0, nil, "--state", state, "stage")
	expect(t, 0, nil, "--state", state, "apply")
	fx.publish("1.1.0")
	expect(t, 0, nil, "--state", state, "stage")
	expect(t, 0, []string{"installed 1.1.0"}, "--state", state, "apply")
	expect(t, 0, []string{"health: ok"}, "--state", state, "status")

	expect(t, 0, []string{"rolled back to 1.0.0"}, "--state", state, "rollback", "--component", "notification-client")
	expect(t, 1, []string{"notification-client: failed (installed 1.0.0", "rolled back by hand from 1.1.0", "held back until a newer release"},
		"--state", state, "status")

	url := srv.URL
	srv.Close()
	expect(t, 1, []string{"cannot reach the repository at " + url + " (connection refused): is its server running"}, "--state", state, "check")
	expect(t, 1, []string{"FAILED (unreachable", "health: attention"}, "--state", state, "status")

	// A repository that serves a timestamp.json that does not verify.
	srv = httptest.NewUnstartedServer(publisher.Handler(fx.store, nil))
	srv.Start()
	defer srv.Close()
	expect(t, 0, nil, "--state", state, "config", "set", "repository_url", srv.URL)
	ts := filepath.Join(fx.store.Dir, "metadata", "timestamp.json")
	if err := os.WriteFile(ts, []byte(`{"signed":{},"signatures":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(t, 3, nil, "--state", state, "check")
	expect(t, 3, []string{"FAILED (verification", "CRITICAL: ", "health: verification-failure (exit 3)"}, "--state", state, "status")
}

// TestConfigShowSet: the settings are listed; a change is validated,
// audited, and refused for what decides whether features ask.
func TestConfigShowSet(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	state, _ := initAgent(t, fx, srv.URL, "--component", "notification-client", "--phi-device-class", "Lab One")
	expect(t, 0, []string{"repository_url", srv.URL, "channel", "stable", "policy.notification-client", "device_model", "(fixed at init)"}, "--state", state, "config", "show")
	expect(t, 0, []string{`"key": "poll_interval"`}, "--state", state, "config", "show", "--json")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"channel", "beta"}, 0, `no release of "notification-client" for linux-amd64 on channel "beta"`},
		{[]string{"channel", "beta"}, 0, "already"},
		{[]string{"channel", "Not A Name"}, 2, "channel"},
		{[]string{"poll_interval", "5s"}, 2, "out of range"},
		{[]string{"policy.notification-client", "auto"}, 0, `-> "auto"`},
		{[]string{"policy.notification-client", "sometimes"}, 2, "want notify, stage or auto"},
		{[]string{"policy.other", "auto"}, 2, "not a configured component"},
		{[]string{"components", "other"}, 2, "remove it first"},
		{[]string{"device_model", "Plain PC"}, 2, "fixed at init"},
		{[]string{"phi_device_classes", ""}, 2, "cannot be removed"},
		{[]string{"phi_device_classes", "Lab One,Lab Two"}, 0, `-> "Lab One,Lab Two"`},
		{[]string{"min_policy_version", "-1"}, 2, "min_policy_version"},
		{[]string{"trust_dir", "/nonexistent/trust"}, 2, "trust_dir"},
		{[]string{"repository_url", "http://updates.example.com"}, 2, "plain http is refused"},
		{[]string{"no_such_key", "x"}, 2, "no setting \"no_such_key\": bcagent config set takes one of repository_url, channel"},
		{[]string{"chanel", "x"}, 2, "did you mean channel?"},
		{[]string{"components", ""}, 2, "components"},
		{[]string{"channel"}, 2, "takes KEY VALUE"},
	} {
		out := expect(t, tc.code, []string{tc.want}, append([]string{"--state", state, "config", "set"}, tc.args...)...)
		if tc.code != 0 && (strings.Contains(out, " --") || strings.Count(out, "\n") != 1) {
			t.Errorf("config set %q: the error is not one line in config.json's words: %q", tc.args, out)
		}
	}
	out := expect(t, 0, []string{"event=config-changed", `channel: \"stable\" -> \"beta\"`}, "--state", state, "audit", "export")
	if n := strings.Count(out, "event=config-changed"); n != 3 {
		t.Fatalf("%d config-changed entries, want 3 (refused and unchanged ones write none): %s", n, out)
	}
}

// TestRunningServiceTakesConfigChange: config set reaches a running
// service at its next cycle, without a restart.
func TestRunningServiceTakesConfigChange(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	state, _ := initAgent(t, fx, srv.URL, "--component", "notification-client", "--channel", "beta")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- client.Run(ctx, state, nil, client.RunOptions{Interval: 100 * time.Millisecond, UserAgent: userAgent()})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	waitFor := func(what string, ok func(*client.StatusReport) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			v, err := client.OpenReadOnly(state, nil)
			if err == nil {
				if st, err := v.Status(); err == nil && ok(st) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the service never reached: %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("no release on channel beta", func(st *client.StatusReport) bool { return st.Components[0].State == client.StateNoRelease })
	expect(t, 0, []string{`channel: "beta" -> "stable"`}, "--state", state, "config", "set", "channel", "stable")
	waitFor("1.0.0 staged from channel stable", func(st *client.StatusReport) bool { return st.Components[0].State == client.StateStaged })
	waitFor("status sees the service", func(st *client.StatusReport) bool { return st.Activity.Service })
}

// TestGlobalFlagsAfterTheCommand: bcagent check --verbose works.
func TestGlobalFlagsAfterTheCommand(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	state, _ := initAgent(t, fx, srv.URL, "--component", "notification-client")
	expect(t, 0, []string{"notification-client: 1.0.0 available", "level=INFO"}, "check", "--verbose", "--state", state)
	expect(t, 0, []string{"USAGE:", "bcagent config set"}, "help", "config", "set")
}

// TestCommonMistakes: what a lab's IT person most often gets wrong is
// answered in our words, naming the flag, file or command, never a bare
// library error.
func TestCommonMistakes(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	other := newFixture(t) // another repository: its root is the wrong one
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	down := httptest.NewServer(nil)
	downURL := down.URL
	down.Close()

	_, warned := initAgent(t, other, srv.URL, "--component", "notification-client")
	for _, w := range []string{"does not verify against the trusted root given with --root", "is it this repository's root.json?"} {
		if !strings.Contains(warned, w) {
			t.Errorf("init with another repository's root: no %q in %q", w, warned)
		}
	}
	_, warned = initAgent(t, fx, downURL, "--component", "notification-client")
	for _, w := range []string{"cannot reach the repository at " + downURL + " (connection refused)", "run bcagent check once it can be reached"} {
		if !strings.Contains(warned, w) {
			t.Errorf("init with the server down: no %q in %q", w, warned)
		}
	}
	state, warned := initAgent(t, fx, srv.URL, "--component", "notifcation-client")
	if !strings.Contains(warned, `no release of "notifcation-client" for linux-amd64 on channel "stable"`) {
		t.Errorf("init with a misspelt component: %q", warned)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a misspelt command", []string{"stauts"}, 2, "did you mean bcagent status?"},
		{"a misspelt flag", []string{"check", "--jsn"}, 2, "did you mean --json?"},
		{"a component not configured", []string{"stage", "--component", "notification-client"}, 2, "not one of this agent's components (notifcation-client); bcagent config set components adds one"},
		{"a flag without its value", []string{"pin", "--component"}, 2, "--component needs a value"},
		{"a second init", []string{"init", "--repo-url", srv.URL, "--root", "r", "--trust", "t", "--component", "c", "--device-id", "d", "--device-model", "m"}, 2, "bcagent config set"},
		{"a misspelt component at check", []string{"check"}, 1, "component notifcation-client has no release in the repository"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, tc.code, []string{tc.want}, append([]string{"--state", state}, tc.args...)...)
		})
	}
}
