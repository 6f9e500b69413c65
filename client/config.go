package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/internal/netaddr"
	"github.com/beckmanconnect/bcupdate/internal/textsafe"
	"github.com/beckmanconnect/bcupdate/repo"
)

// Config is <state>/config.json.
type Config struct {
	RepositoryURL string `json:"repository_url"`
	// RepositoryMirrors are more URLs of the same repository (site
	// mirrors, the vendor's repository as a fallback), tried in order
	// after RepositoryURL fails (mirror.go). Absent in a config.json
	// written before issue 18: one repository.
	RepositoryMirrors []string `json:"repository_mirrors,omitempty"`
	Components        []string `json:"components"`
	Platform          string   `json:"platform"`
	Channel           string   `json:"channel"`
	DeviceID          string   `json:"device_id"`
	DeviceModel       string   `json:"device_model"`
	TrustDir          string   `json:"trust_dir"`
	AllowedHosts      []string `json:"allowed_hosts,omitempty"`
	InstallRoot       string   `json:"install_root"`
	// PHIDeviceClasses adds local classes to the signed policy's; it can
	// never remove one.
	PHIDeviceClasses []string `json:"phi_device_classes,omitempty"`
	// MinPolicyVersion is the device policy version current when the
	// agent was installed: until the agent has accepted a code-signed
	// policy at least this new, a feature gated for PHI devices asks on
	// this device whatever its model, and an older signed policy is refused.
	MinPolicyVersion int64 `json:"min_policy_version,omitempty"`
	// NotifyCommand is run with each new notification as JSON on stdin.
	NotifyCommand []string `json:"notify_command,omitempty"`
	// WatchDir is the drop folder the service (bcagent run) imports
	// offline bundles from (watch.go; run --watch overrides it); "": none.
	WatchDir string `json:"watch_dir,omitempty"`

	// The service (bcagent run). Durations are Go duration strings ("90s",
	// "30m", "2h"); "" is the default. Every setting has a range
	// (ranges.go, docs/operations.md); Validate refuses one outside it.
	PollInterval string            `json:"poll_interval,omitempty"` // default 1h, 1m to 168h
	Policies     map[string]Policy `json:"policies,omitempty"`      // component: notify|stage|auto (default stage)
	ApplyWindow  string            `json:"apply_window,omitempty"`  // e.g. "02:00-05:00" local time
	// MaxRate caps downloads, in bytes per second (0: no cap).
	MaxRate int64 `json:"max_rate,omitempty"`
	// MinRate and MinRateWindow are the minimum-rate rule every download
	// must keep (http.go): at least MinRate bytes per second over each
	// MinRateWindow of waiting for the server (defaults 1024 and 30s).
	MinRate       int64  `json:"min_rate,omitempty"`
	MinRateWindow string `json:"min_rate_window,omitempty"`
	// HealthTimeout and InstallerTimeout bound a release's health check and
	// installer (defaults 60s and 30m).
	HealthTimeout    string `json:"health_timeout,omitempty"`
	InstallerTimeout string `json:"installer_timeout,omitempty"`
}

// Policies for a component in the service.
const (
	PolicyNotify Policy = "notify"
	PolicyStage  Policy = "stage"
	PolicyAuto   Policy = "auto"
)

// Policy is what the service does with a component's updates.
type Policy string

// Policy is a component's service policy.
func (c *Config) Policy(component string) Policy {
	if p := c.Policies[component]; p != "" {
		return p
	}
	return PolicyStage
}

// durationOr is the duration s, or def if s is empty (or, in a
// configuration Validate has not seen, not a positive duration).
func durationOr(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return def
}

// Interval is the poll interval.
func (c *Config) Interval() time.Duration { return durationOr(c.PollInterval, DefaultPollInterval) }

// MinRateRule is the minimum-rate rule: bytes per second over a window.
func (c *Config) MinRateRule() (int64, time.Duration) {
	rate := c.MinRate
	if rate <= 0 {
		rate = DefaultMinRate
	}
	return rate, durationOr(c.MinRateWindow, DefaultMinRateWindow)
}

// parseWindow parses "HH:MM-HH:MM" into minutes of the day.
func parseWindow(w string) (from, to int, err error) {
	a, b, ok := strings.Cut(w, "-")
	if !ok {
		return 0, 0, fmt.Errorf("apply window %q: want HH:MM-HH:MM", w)
	}
	parse := func(s string) (int, error) {
		t, err := time.Parse("15:04", strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("apply window %q: %q is not HH:MM", w, s)
		}
		return t.Hour()*60 + t.Minute(), nil
	}
	if from, err = parse(a); err != nil {
		return
	}
	to, err = parse(b)
	return
}

// InWindow says whether t (local time) is inside the apply window; no
// window means always.
func (c *Config) InWindow(t time.Time) bool {
	if c.ApplyWindow == "" {
		return true
	}
	from, to, err := parseWindow(c.ApplyWindow)
	if err != nil {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	if from <= to {
		return m >= from && m < to
	}
	return m >= from || m < to // across midnight
}

const maxConfigSize = 1 << 20

// DefaultPlatform is this machine's OS-ARCH.
func DefaultPlatform() string { return runtime.GOOS + "-" + runtime.GOARCH }

// Validate checks the configuration; errors name the field at fault. It
// runs configRules in order and returns the first rule's error.
func (c *Config) Validate() error {
	for _, r := range configRules {
		if err := r.check(c); err != nil {
			return err
		}
	}
	return nil
}

// configRule is one rule of Validate: the field as the user knows it (its
// config.json key and the bcagent init flag that sets it) and its check,
// which returns the usage error the user sees, naming the field.
type configRule struct {
	key, flag string
	check     func(c *Config) error
}

// configRules are Validate's rules, in the order they are checked.
var configRules = []configRule{
	{"repository_url", "--repo-url", checkRepositoryURL},
	{"repository_mirrors", "--repo-url", checkRepositoryMirrors},
	{"components", "--component", checkComponents},
	{"platform", "--platform", func(c *Config) error {
		if err := repo.ValidatePlatform(c.Platform); err != nil {
			return usagef("--platform: %v", err)
		}
		return nil
	}},
	{"channel", "--channel", func(c *Config) error {
		if err := repo.ValidateName("channel", c.Channel); err != nil {
			return usagef("--channel: %v", err)
		}
		return nil
	}},
	{"device_id", "--device-id", func(c *Config) error { return checkDeviceText("--device-id", c.DeviceID) }},
	{"device_model", "--device-model", func(c *Config) error { return checkDeviceText("--device-model", c.DeviceModel) }},
	{"trust_dir", "--trust", func(c *Config) error { return checkAbsolute("trust directory", c.TrustDir) }},
	{"install_root", "--install-root", func(c *Config) error { return checkAbsolute("install root", c.InstallRoot) }},
	{"phi_device_classes", "--phi-device-class", func(c *Config) error {
		for _, m := range c.PHIDeviceClasses {
			if strings.TrimSpace(m) == "" {
				return usagef("--phi-device-class must not be empty")
			}
			if err := textsafe.Check(m, false); err != nil {
				return usagef("--phi-device-class: %v", err)
			}
		}
		return nil
	}},
	// The duration settings (ranges.go durationSettings), in one rule.
	{"poll_interval, health_timeout, installer_timeout, min_rate_window",
		"--poll-interval, --health-timeout, --installer-timeout, --min-rate-window", (*Config).checkDurations},
	{"apply_window", "--apply-window", checkApplyWindow},
	{"watch_dir", "--watch", checkWatchDirSetting},
	{"policies", "--policy", func(c *Config) error {
		for comp, p := range c.Policies {
			if !slices.Contains(c.Components, comp) {
				return usagef("--policy %s=%s: %s is not a configured component", comp, p, comp)
			}
			if p != PolicyNotify && p != PolicyStage && p != PolicyAuto {
				return usagef("--policy %s=%s: want notify, stage or auto", comp, p)
			}
		}
		return nil
	}},
	{"min_policy_version", "--min-policy-version", func(c *Config) error {
		return MinPolicyVersionRange.Check("--min-policy-version (config.json min_policy_version)", c.MinPolicyVersion)
	}},
	{"max_rate", "--max-rate", func(c *Config) error {
		return MaxRateRange.Check("--max-rate (config.json max_rate)", c.MaxRate)
	}},
	{"min_rate", "--min-rate", func(c *Config) error {
		if c.MinRate == 0 { // 0: the default
			return nil
		}
		if err := MinRateRange.Check("--min-rate (config.json min_rate)", c.MinRate); err != nil {
			return fmt.Errorf("%w (default %d)", err, DefaultMinRate)
		}
		return nil
	}},
	{"allowed_hosts", "--allow-host", func(c *Config) error {
		for _, h := range c.AllowedHosts {
			if h == "" || strings.ContainsAny(h, "/ ") {
				return usagef("--allow-host %q: want a host name or host:port", h)
			}
			if err := textsafe.Check(h, false); err != nil {
				return usagef("--allow-host: %v", err)
			}
		}
		return nil
	}},
}

// checkRepositoryURL: https, or http to loopback; no query, fragment or
// credentials.
func checkRepositoryURL(c *Config) error {
	u, err := url.Parse(c.RepositoryURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return usagef("repository URL %q: want https://host/path", c.RepositoryURL)
	}
	if u.Scheme == "http" && !netaddr.IsLoopback(u.Hostname()) {
		return usagef("repository URL %s: plain http is refused except to loopback; use https", c.RepositoryURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return usagef("repository URL %s: no query, fragment or credentials allowed", c.RepositoryURL)
	}
	return nil
}

// checkRepositoryMirrors: each mirror a repository URL (checkRepositoryURL),
// none given twice.
func checkRepositoryMirrors(c *Config) error {
	seen := map[string]bool{strings.TrimRight(c.RepositoryURL, "/"): true}
	for _, m := range c.RepositoryMirrors {
		if err := checkRepositoryURL(&Config{RepositoryURL: m}); err != nil {
			return fmt.Errorf("repository_mirrors: %w", err)
		}
		if seen[strings.TrimRight(m, "/")] {
			return usagef("repository_mirrors: %s is given twice (repository_url and repository_mirrors list each mirror once)", m)
		}
		seen[strings.TrimRight(m, "/")] = true
	}
	return nil
}

// checkComponents: at least one, each a valid name, none twice.
func checkComponents(c *Config) error {
	if len(c.Components) == 0 {
		return usagef("at least one --component is required")
	}
	seen := map[string]bool{}
	for _, comp := range c.Components {
		if err := repo.ValidateName("component", comp); err != nil {
			return usagef("--component: %v", err)
		}
		if seen[comp] {
			return usagef("--component %s given twice", comp)
		}
		seen[comp] = true
	}
	return nil
}

// checkDeviceText: a device ID or model is required, at most 128
// characters, and safe to show.
func checkDeviceText(flag, v string) error {
	if strings.TrimSpace(v) == "" || len(v) > 128 {
		return usagef("%s is required (at most 128 characters)", flag)
	}
	if err := textsafe.Check(v, false); err != nil {
		return usagef("%s: %v", flag, err)
	}
	return nil
}

// checkAbsolute: a directory setting must be an absolute path.
func checkAbsolute(what, p string) error {
	if p == "" || !filepath.IsAbs(p) {
		return usagef("%s %q must be an absolute path", what, p)
	}
	return nil
}

// checkApplyWindow: none, or HH:MM-HH:MM with two different times.
func checkApplyWindow(c *Config) error {
	if c.ApplyWindow == "" {
		return nil
	}
	from, to, err := parseWindow(c.ApplyWindow)
	if err != nil {
		return usagef("--apply-window (config.json apply_window): %v; times 00:00 to 23:59", err)
	}
	if from == to {
		return usagef("--apply-window (config.json apply_window) %q is empty (it starts where it ends): want HH:MM-HH:MM with two different times, 00:00 to 23:59 (across midnight is fine: 22:00-04:00)", c.ApplyWindow)
	}
	return nil
}

func loadConfig(stateDir string) (*Config, error) {
	p := filepath.Join(stateDir, "config.json")
	data, err := readFileLimited(p, maxConfigSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no config.json (run bcagent init)", ErrNotInitialized, stateDir)
	}
	if err != nil {
		return nil, err
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields() // e.g. an attempt to remove PHI classes is an error, not ignored
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &c, nil
}

func readFileLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return data, nil
}

func writeJSON(p string, v any, perm os.FileMode) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, append(data, '\n'), perm)
}
