package client

import (
	"fmt"
	"strings"
	"time"
)

// The agent's settings and their ranges (docs/operations.md, "Agent
// settings and their ranges"). Every duration and count the agent takes,
// from config.json or a flag, has one; a value outside it is a usage error
// (exit code 2) that names the flag, the config.json field and the range,
// never silently replaced by a default.

// DurationRange is the range of a duration setting, both ends included.
type DurationRange struct{ Min, Max time.Duration }

func (r DurationRange) String() string {
	return shortDuration(r.Min) + " to " + shortDuration(r.Max)
}

// Check says whether d is in the range; name is how the error names the
// setting (a flag, with the config.json field if there is one).
func (r DurationRange) Check(name string, d time.Duration) error {
	if d < r.Min || d > r.Max {
		return usagef("%s %s is out of range: want %s", name, shortDuration(d), r)
	}
	return nil
}

// IntRange is the range of a count or rate setting, both ends included;
// Zero, if set, says what 0 means when 0 is allowed outside the range.
type IntRange struct {
	Min, Max int64
	Unit     string // "bytes/s", or "" for a plain count
	Zero     string // e.g. "no cap"; "" if 0 is only allowed when Min is 0
}

func (r IntRange) String() string {
	unit := ""
	if r.Unit != "" {
		unit = " " + r.Unit
	}
	s := fmt.Sprintf("%d to %d%s", r.Min, r.Max, unit)
	if r.Zero != "" {
		s = fmt.Sprintf("0 (%s) or %s", r.Zero, s)
	}
	return s
}

// Check says whether v is in the range.
func (r IntRange) Check(name string, v int64) error {
	if (v == 0 && r.Zero != "") || (v >= r.Min && v <= r.Max) {
		return nil
	}
	return usagef("%s %d is out of range: want %s", name, v, r)
}

// The ranges. Poll interval also bounds `run --interval`.
var (
	PollIntervalRange     = DurationRange{time.Minute, 7 * 24 * time.Hour}
	HealthTimeoutRange    = DurationRange{time.Second, time.Hour}
	InstallerTimeoutRange = DurationRange{10 * time.Second, 12 * time.Hour}
	MinRateWindowRange    = DurationRange{10 * time.Second, 10 * time.Minute}

	MinRateRange          = IntRange{Min: 128, Max: 1 << 20, Unit: "bytes/s"}
	MaxRateRange          = IntRange{Min: 4 << 10, Max: 1 << 30, Unit: "bytes/s", Zero: "no cap"}
	MinPolicyVersionRange = IntRange{Min: 0, Max: 1<<31 - 1}
	// CyclesRange bounds `run --cycles` (0: until stopped).
	CyclesRange = IntRange{Min: 1, Max: 1_000_000, Zero: "run until stopped"}
)

// Defaults of the duration settings ("" in config.json).
const (
	DefaultPollInterval     = time.Hour
	DefaultHealthTimeout    = time.Minute
	DefaultInstallerTimeout = 30 * time.Minute
)

// durationSetting is a duration field of config.json, the init flag that
// sets it, its default and its range.
type durationSetting struct {
	field, flag string
	def         time.Duration
	rng         DurationRange
	get         func(*Config) string
}

var durationSettings = []durationSetting{
	{"poll_interval", "--poll-interval", DefaultPollInterval, PollIntervalRange, func(c *Config) string { return c.PollInterval }},
	{"health_timeout", "--health-timeout", DefaultHealthTimeout, HealthTimeoutRange, func(c *Config) string { return c.HealthTimeout }},
	{"installer_timeout", "--installer-timeout", DefaultInstallerTimeout, InstallerTimeoutRange, func(c *Config) string { return c.InstallerTimeout }},
	{"min_rate_window", "--min-rate-window", DefaultMinRateWindow, MinRateWindowRange, func(c *Config) string { return c.MinRateWindow }},
}

// checkDurations checks every duration field that is set.
func (c *Config) checkDurations() error {
	for _, s := range durationSettings {
		v := s.get(c)
		if v == "" {
			continue
		}
		name := fmt.Sprintf("%s (config.json %s)", s.flag, s.field)
		d, err := time.ParseDuration(v)
		if err != nil {
			return usagef("%s %q: want a duration such as 90s, 30m or 2h, from %s (default %s)", name, v, s.rng, shortDuration(s.def))
		}
		if err := s.rng.Check(name, d); err != nil {
			return fmt.Errorf("%w (default %s)", err, shortDuration(s.def))
		}
	}
	return nil
}

// shortDuration writes d without empty units: 1m, 168h, 1h30m, 90ms.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
