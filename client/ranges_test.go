package client

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzConfigRanges: whatever config.json holds, Validate does not panic,
// and a configuration it accepts yields settings inside their ranges (no
// value is silently replaced by a default).
func FuzzConfigRanges(f *testing.F) {
	base := `{"repository_url": "https://updates.example.com", "components": ["notification-client"], "platform": "linux-amd64",
		"channel": "stable", "device_id": "INST-1", "device_model": "DxH 900", "trust_dir": "/trust", "install_root": "/install"`
	for _, extra := range []string{
		``,
		`, "poll_interval": "1ns"`,
		`, "poll_interval": "-5s"`,
		`, "poll_interval": "168h", "health_timeout": "1h", "installer_timeout": "12h", "min_rate_window": "10m"`,
		`, "min_rate": 1, "max_rate": -1`,
		`, "min_rate": 1048576, "max_rate": 4096, "min_policy_version": 2147483647`,
		`, "apply_window": "02:00-02:00"`,
		`, "apply_window": "22:00-04:00"`,
		`, "health_timeout": "9223372036854775807ns"`,
	} {
		f.Add([]byte(base + extra + "}"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if dec.Decode(&c) != nil || c.Validate() != nil {
			return
		}
		in := func(what string, d time.Duration, r DurationRange) {
			if d < r.Min || d > r.Max {
				t.Fatalf("%s %s accepted outside %s", what, d, r)
			}
		}
		in("poll interval", c.Interval(), PollIntervalRange)
		in("health timeout", durationOr(c.HealthTimeout, DefaultHealthTimeout), HealthTimeoutRange)
		in("installer timeout", durationOr(c.InstallerTimeout, DefaultInstallerTimeout), InstallerTimeoutRange)
		rate, window := c.MinRateRule()
		in("min rate window", window, MinRateWindowRange)
		if rate < MinRateRange.Min || rate > MinRateRange.Max {
			t.Fatalf("min rate %d accepted outside %s", rate, MinRateRange)
		}
		if c.MaxRate != 0 && (c.MaxRate < MaxRateRange.Min || c.MaxRate > MaxRateRange.Max) {
			t.Fatalf("max rate %d accepted outside %s", c.MaxRate, MaxRateRange)
		}
		if c.ApplyWindow != "" {
			if from, to, err := parseWindow(c.ApplyWindow); err != nil || from == to {
				t.Fatalf("apply window %q accepted", c.ApplyWindow)
			}
		}
	})
}
