package client

import (
	"errors"
	"strings"
	"testing"
)

// Every rule of Validate, by its config.json key, with a good and a bad
// value: the good one passes, the bad one is refused with the rule's
// message (a usage error: bcagent exits 2).
func TestConfigRules(t *testing.T) {
	type value struct {
		edit func(c *Config)
		want string // bad values: part of the message
	}
	cases := map[string]struct{ good, bad []value }{
		"repository_url": {
			good: []value{{edit: func(c *Config) { c.RepositoryURL = "http://127.0.0.1:8080/repo" }}, {edit: func(c *Config) { c.RepositoryURL = "http://localhost/repo" }}},
			bad: []value{
				{func(c *Config) { c.RepositoryURL = "ftp://updates.example.com/" }, `repository URL "ftp://updates.example.com/": want https://host/path`},
				{func(c *Config) { c.RepositoryURL = "https:///repo" }, "want https://host/path"},
				{func(c *Config) { c.RepositoryURL = "http://updates.example.com/repo" }, "plain http is refused except to loopback; use https"},
				{func(c *Config) { c.RepositoryURL = "https://u:p@updates.example.com/repo" }, "no query, fragment or credentials allowed"},
				{func(c *Config) { c.RepositoryURL = "https://updates.example.com/repo?x=1" }, "no query, fragment or credentials allowed"},
			},
		},
		"repository_mirrors": {
			good: []value{{edit: func(c *Config) {
				c.RepositoryMirrors = []string{"https://mirror.lab.example/repo", "http://127.0.0.1:8081"}
			}}},
			bad: []value{
				{func(c *Config) { c.RepositoryMirrors = []string{"http://mirror.lab.example"} }, "repository_mirrors: repository URL http://mirror.lab.example: plain http is refused"},
				{func(c *Config) { c.RepositoryMirrors = []string{"https://m.example", "https://m.example/"} }, "repository_mirrors: https://m.example/ is given twice"},
			},
		},
		"components": {
			good: []value{{edit: func(c *Config) { c.Components = []string{"a", "notification-client"} }}},
			bad: []value{
				{func(c *Config) { c.Components = nil }, "at least one --component is required"},
				{func(c *Config) { c.Components = []string{"../x"} }, "--component: "},
				{func(c *Config) { c.Components = []string{"a", "a"} }, "--component a given twice"},
			},
		},
		"platform": {
			good: []value{{edit: func(c *Config) { c.Platform = "windows-amd64" }}},
			bad:  []value{{func(c *Config) { c.Platform = "windows" }, "--platform: "}},
		},
		"channel": {
			good: []value{{edit: func(c *Config) { c.Channel = "beta" }}},
			bad:  []value{{func(c *Config) { c.Channel = "" }, "--channel: "}},
		},
		"device_id": {
			good: []value{{edit: func(c *Config) { c.DeviceID = strings.Repeat("x", 128) }}},
			bad: []value{
				{func(c *Config) { c.DeviceID = " " }, "--device-id is required (at most 128 characters)"},
				{func(c *Config) { c.DeviceID = strings.Repeat("x", 129) }, "--device-id is required (at most 128 characters)"},
				{func(c *Config) { c.DeviceID = "A\x1b" }, "--device-id: U+001B"},
			},
		},
		"device_model": {
			good: []value{{edit: func(c *Config) { c.DeviceModel = "DxH 900" }}},
			bad: []value{
				{func(c *Config) { c.DeviceModel = "" }, "--device-model is required (at most 128 characters)"},
				{func(c *Config) { c.DeviceModel = "M\n" }, "--device-model: U+000A"},
			},
		},
		"trust_dir": {
			good: []value{{edit: func(c *Config) { c.TrustDir = "/opt/trust" }}},
			bad: []value{
				{func(c *Config) { c.TrustDir = "" }, `trust directory "" must be an absolute path`},
				{func(c *Config) { c.TrustDir = "trust" }, `trust directory "trust" must be an absolute path`},
			},
		},
		"install_root": {
			good: []value{{edit: func(c *Config) { c.InstallRoot = "/opt/install" }}},
			bad:  []value{{func(c *Config) { c.InstallRoot = "install" }, `install root "install" must be an absolute path`}},
		},
		"phi_device_classes": {
			good: []value{{edit: func(c *Config) { c.PHIDeviceClasses = []string{"DxH 900"} }}},
			bad: []value{
				{func(c *Config) { c.PHIDeviceClasses = []string{" "} }, "--phi-device-class must not be empty"},
				{func(c *Config) { c.PHIDeviceClasses = []string{"D\x1b"} }, "--phi-device-class: U+001B"},
			},
		},
		"poll_interval, health_timeout, installer_timeout, min_rate_window": {
			good: []value{{edit: func(c *Config) {
				c.PollInterval, c.HealthTimeout, c.InstallerTimeout, c.MinRateWindow = "30m", "2m", "1h", "1m"
			}}},
			bad: []value{
				{func(c *Config) { c.PollInterval = "often" }, `--poll-interval (config.json poll_interval) "often": want a duration such as 90s, 30m or 2h`},
				{func(c *Config) { c.PollInterval = "1s" }, "--poll-interval (config.json poll_interval) 1s is out of range"},
				{func(c *Config) { c.HealthTimeout = "2h" }, "--health-timeout (config.json health_timeout) 2h is out of range"},
				{func(c *Config) { c.InstallerTimeout = "1s" }, "--installer-timeout (config.json installer_timeout) 1s is out of range"},
				{func(c *Config) { c.MinRateWindow = "1h" }, "--min-rate-window (config.json min_rate_window) 1h is out of range"},
			},
		},
		"apply_window": {
			good: []value{{edit: func(c *Config) { c.ApplyWindow = "22:00-04:00" }}},
			bad: []value{
				{func(c *Config) { c.ApplyWindow = "night" }, "--apply-window (config.json apply_window): apply window \"night\": want HH:MM-HH:MM; times 00:00 to 23:59"},
				{func(c *Config) { c.ApplyWindow = "02:00-02:00" }, `--apply-window (config.json apply_window) "02:00-02:00" is empty (it starts where it ends)`},
			},
		},
		"watch_dir": {
			good: []value{{edit: func(c *Config) { c.WatchDir = "/srv/bcupdate-drop" }}, {edit: func(c *Config) { c.WatchDir = "" }}},
			bad: []value{
				{func(c *Config) { c.WatchDir = "drop" }, `--watch (config.json watch_dir) "drop" must be an absolute path`},
				{func(c *Config) { c.WatchDir = "/srv/drop\x1b" }, "--watch (config.json watch_dir): U+001B"},
			},
		},
		"policies": {
			good: []value{{edit: func(c *Config) { c.Policies = map[string]Policy{"notification-client": PolicyAuto} }}},
			bad: []value{
				{func(c *Config) { c.Policies = map[string]Policy{"other": PolicyAuto} }, "--policy other=auto: other is not a configured component"},
				{func(c *Config) { c.Policies = map[string]Policy{"notification-client": "now"} }, "--policy notification-client=now: want notify, stage or auto"},
			},
		},
		"min_policy_version": {
			good: []value{{edit: func(c *Config) { c.MinPolicyVersion = 7 }}},
			bad:  []value{{func(c *Config) { c.MinPolicyVersion = -1 }, "--min-policy-version (config.json min_policy_version) -1 is out of range"}},
		},
		"max_rate": {
			good: []value{{edit: func(c *Config) { c.MaxRate = 0 }}, {edit: func(c *Config) { c.MaxRate = 1 << 20 }}},
			bad:  []value{{func(c *Config) { c.MaxRate = 1 }, "--max-rate (config.json max_rate) 1 is out of range"}},
		},
		"min_rate": {
			good: []value{{edit: func(c *Config) { c.MinRate = 0 }}, {edit: func(c *Config) { c.MinRate = 4096 }}},
			bad:  []value{{func(c *Config) { c.MinRate = 1 }, "--min-rate (config.json min_rate) 1 is out of range: want 128 to 1048576 bytes/s (default 1024)"}},
		},
		"allowed_hosts": {
			good: []value{{edit: func(c *Config) { c.AllowedHosts = []string{"cdn.example.com:8443"} }}},
			bad: []value{
				{func(c *Config) { c.AllowedHosts = []string{""} }, `--allow-host "": want a host name or host:port`},
				{func(c *Config) { c.AllowedHosts = []string{"cdn.example.com/x"} }, `--allow-host "cdn.example.com/x": want a host name or host:port`},
				{func(c *Config) { c.AllowedHosts = []string{"cdn\u200e.example.com"} }, "--allow-host: U+200E"},
			},
		},
	}
	base := validConfig()
	if err := base.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, r := range configRules {
		tc, ok := cases[r.key]
		if !ok || len(tc.good) == 0 || len(tc.bad) == 0 {
			t.Errorf("rule %s (%s) has no good and bad value here", r.key, r.flag)
			continue
		}
		delete(cases, r.key)
		t.Run(r.key, func(t *testing.T) {
			for i, v := range tc.good {
				c := validConfig()
				v.edit(&c)
				if err := r.check(&c); err != nil {
					t.Errorf("good value %d: rule refused it: %v", i, err)
				}
				if err := c.Validate(); err != nil {
					t.Errorf("good value %d: Validate refused it: %v", i, err)
				}
			}
			for i, v := range tc.bad {
				c := validConfig()
				if err := r.check(&c); err != nil {
					t.Fatalf("rule refuses the valid config: %v", err)
				}
				v.edit(&c)
				err := c.Validate()
				if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), v.want) {
					t.Errorf("bad value %d: Validate() = %v, want a usage error containing %q", i, err, v.want)
				}
				if rerr := r.check(&c); rerr == nil || rerr.Error() != err.Error() {
					t.Errorf("bad value %d: the rule says %v, Validate %v", i, rerr, err)
				}
			}
		})
	}
	for key := range cases {
		t.Errorf("case %s names no rule", key)
	}
}
