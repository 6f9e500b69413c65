package main

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// TestSettingRanges: every duration and count flag has a range, and a
// value outside it is exit 2 with a message that names the flag and the
// range, before anything is written.
func TestSettingRanges(t *testing.T) {
	state := filepath.Join(t.TempDir(), "agent")
	initArgs := []string{"--state", state, "init", "--repo-url", "https://updates.example.com", "--root", "/nonexistent/root.json",
		"--trust", "/nonexistent/trust", "--component", "notification-client", "--device-id", "INST-1", "--device-model", "DxH 900"}
	runArgs := []string{"--state", state, "run"}
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		flag  string // named in the message
		rng   string // the range, in the message
		extra string // also in the message
	}{
		{"poll interval of 1ns (a tight loop)", append(initArgs, "--poll-interval", "1ns"), nil, "--poll-interval", "1m to 168h", "poll_interval"},
		{"poll interval below a minute", append(initArgs, "--poll-interval", "30s"), nil, "--poll-interval", "1m to 168h", ""},
		{"poll interval of a year", append(initArgs, "--poll-interval", "8760h"), nil, "--poll-interval", "1m to 168h", ""},
		{"negative poll interval", append(initArgs, "--poll-interval", "-5m"), nil, "--poll-interval", "1m to 168h", ""},
		{"poll interval that is no duration", append(initArgs, "--poll-interval", "soon"), nil, "--poll-interval", "1m to 168h", "want a duration"},
		{"health timeout of 0", append(initArgs, "--health-timeout", "0s"), nil, "--health-timeout", "1s to 1h", "health_timeout"},
		{"health timeout of 2h", append(initArgs, "--health-timeout", "2h"), nil, "--health-timeout", "1s to 1h", ""},
		{"installer timeout of 1ns", append(initArgs, "--installer-timeout", "1ns"), nil, "--installer-timeout", "10s to 12h", "installer_timeout"},
		{"installer timeout of 2 days", append(initArgs, "--installer-timeout", "48h"), nil, "--installer-timeout", "10s to 12h", ""},
		{"min rate window of 1s", append(initArgs, "--min-rate-window", "1s"), nil, "--min-rate-window", "10s to 10m", "min_rate_window"},
		{"min rate window of 1h", append(initArgs, "--min-rate-window", "1h"), nil, "--min-rate-window", "10s to 10m", ""},
		{"negative min rate", append(initArgs, "--min-rate", "-1"), nil, "--min-rate", "128 to 1048576 bytes/s", "min_rate"},
		{"min rate of 0 (no rule)", append(initArgs, "--min-rate", "0"), nil, "--min-rate", "128 to 1048576 bytes/s", "cannot be turned off"},
		{"min rate of 10 B/s", append(initArgs, "--min-rate", "10"), nil, "--min-rate", "128 to 1048576 bytes/s", ""},
		{"min rate of 10 MiB/s", append(initArgs, "--min-rate", "10485760"), nil, "--min-rate", "128 to 1048576 bytes/s", ""},
		{"negative max rate", append(initArgs, "--max-rate", "-1"), nil, "--max-rate", "0 (no cap) or 4096 to 1073741824 bytes/s", "max_rate"},
		{"max rate of 100 B/s", append(initArgs, "--max-rate", "100"), nil, "--max-rate", "0 (no cap) or 4096 to 1073741824 bytes/s", ""},
		{"max rate of 2 TB/s", append(initArgs, "--max-rate", "2000000000000"), nil, "--max-rate", "0 (no cap) or 4096 to 1073741824 bytes/s", ""},
		{"negative min policy version", append(initArgs, "--min-policy-version", "-1"), nil, "--min-policy-version", "0 to 2147483647", ""},
		{"empty apply window", append(initArgs, "--apply-window", "02:00-02:00"), nil, "--apply-window", "00:00 to 23:59", "is empty"},
		{"apply window at 25:00", append(initArgs, "--apply-window", "25:00-03:00"), nil, "--apply-window", "00:00 to 23:59", ""},
		{"run forever with --cycles -1", append(runArgs, "--cycles", "-1"), nil, "--cycles", "0 (run until stopped) or 1 to 1000000", ""},
		{"a million and one cycles", append(runArgs, "--cycles", "1000001"), nil, "--cycles", "0 (run until stopped) or 1 to 1000000", ""},
		{"negative interval", append(runArgs, "--interval", "-5s"), nil, "--interval", "1m to 168h", ""},
		{"interval of 0", append(runArgs, "--interval", "0s"), nil, "--interval", "1m to 168h", ""},
		{"interval of 1ns", append(runArgs, "--interval", "1ns"), nil, "--interval", "1m to 168h", ""},
		{"interval of a month", append(runArgs, "--interval", "720h"), nil, "--interval", "1m to 168h", ""},
		{"interval from the environment", runArgs, map[string]string{"BCAGENT_INTERVAL": "-5s"}, "--interval", "1m to 168h", ""},
		{"cycles from the environment", runArgs, map[string]string{"BCAGENT_CYCLES": "-1"}, "--cycles", "0 (run until stopped) or 1 to 1000000", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, out, errOut := bcagent(t, tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			for _, want := range []string{tc.flag, tc.rng, tc.extra} {
				if !strings.Contains(errOut, want) {
					t.Errorf("the message does not say %q: %s", want, errOut)
				}
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("not one line: %q", errOut)
			}
			if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused setting left %s behind", state)
			}
		})
	}
}

// TestSettingRangesInRange: the ends of each range are accepted.
func TestSettingRangesInRange(t *testing.T) {
	c := client.Config{RepositoryURL: "https://updates.example.com", Components: []string{"notification-client"}, Platform: "linux-amd64",
		Channel: "stable", DeviceID: "INST-1", DeviceModel: "DxH 900", TrustDir: "/trust", InstallRoot: "/install"}
	for _, set := range []func(*client.Config){
		func(c *client.Config) {
			c.PollInterval, c.HealthTimeout, c.InstallerTimeout, c.MinRateWindow = "1m", "1s", "10s", "10s"
		},
		func(c *client.Config) {
			c.PollInterval, c.HealthTimeout, c.InstallerTimeout, c.MinRateWindow = "168h", "1h", "12h", "10m"
		},
		func(c *client.Config) { c.MinRate, c.MaxRate, c.MinPolicyVersion = 128, 4096, 0 },
		func(c *client.Config) { c.MinRate, c.MaxRate, c.MinPolicyVersion = 1<<20, 1<<30, 1<<31-1 },
		func(c *client.Config) { c.MaxRate, c.ApplyWindow = 0, "22:00-04:00" },
	} {
		cc := c
		set(&cc)
		if err := cc.Validate(); err != nil {
			t.Errorf("%+v: %v", cc, err)
		}
	}
	for _, d := range []time.Duration{time.Minute, 168 * time.Hour} {
		if err := client.PollIntervalRange.Check("--interval", d); err != nil {
			t.Error(err)
		}
	}
}

// TestConfigOutOfRange: a config.json edited by hand to a value out of
// range stops every command with exit 2 naming the field and the range,
// instead of being replaced by a default.
func TestConfigOutOfRange(t *testing.T) {
	fx := newFixture(t)
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	state := filepath.Join(fx.dir, "agent")
	if code, _, errOut := bcagent(t, "--state", state, "init", "--repo-url", srv.URL, "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"),
		"--trust", fx.pki.TrustDir, "--component", "notification-client", "--device-id", "INST-1", "--device-model", "DxH 900", "--platform", "linux-amd64",
		"--min-rate", "2048", "--min-rate-window", "45s", "--installer-timeout", "1h"); code != 0 {
		t.Fatal(errOut)
	}
	p := filepath.Join(state, "config.json")
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	json.Unmarshal(good, &cfg)
	if cfg["min_rate"] != 2048.0 || cfg["min_rate_window"] != "45s" || cfg["installer_timeout"] != "1h" {
		t.Fatalf("init did not record the settings: %s", good)
	}
	for _, tc := range []struct {
		field string
		value any
		rng   string
	}{
		{"poll_interval", "1ns", "1m to 168h"},
		{"health_timeout", "-5s", "1s to 1h"},
		{"min_rate", 1, "128 to 1048576"},
		{"min_rate_window", "1s", "10s to 10m"},
		{"max_rate", -1, "0 (no cap) or 4096"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			c := map[string]any{}
			json.Unmarshal(good, &c)
			c[tc.field] = tc.value
			b, _ := json.Marshal(c)
			os.WriteFile(p, b, 0o600)
			defer os.WriteFile(p, good, 0o600)
			for _, cmd := range []string{"status", "check"} {
				code, _, errOut := bcagent(t, "--state", state, cmd)
				if code != exitUsage || !strings.Contains(errOut, tc.field) || !strings.Contains(errOut, tc.rng) {
					t.Errorf("%s with %s=%v: exit %d: %s", cmd, tc.field, tc.value, code, errOut)
				}
			}
		})
	}
}
