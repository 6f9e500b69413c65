package client

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/internal/suggest"
	"github.com/beckmanconnect/bcupdate/signer"
)

// Changing an agent after init (bcagent config show|set, docs/formats.md).
//
// Each setting of config.json that bcagent config knows is one entry of
// settings: its key, how its value reads as text, and how a text value is
// put in. A change is checked by the same rules as init (Validate) and a
// few of its own, written atomically, and recorded in the audit log; a
// running service picks it up at its next cycle, which opens config.json
// again. The settings that decide whether a feature asks a person before
// it turns on cannot be weakened here: device_id, device_model and
// install_root are fixed at init, a PHI device class can be added but not
// removed, and min_policy_version can only go up.

// EventConfigChanged: a setting of config.json was changed (bcagent
// config set); the detail says which, from what, to what.
const EventConfigChanged EventKind = "config-changed"

// setting is one key of config.json as bcagent config shows and sets it.
type setting struct {
	key   string
	about string // one line for config show and the docs
	get   func(c *Config) string
	// set puts v into c; nil: the setting cannot be changed (fixed says why).
	set   func(c *Config, v string) error
	fixed string
}

// list is a comma-separated list setting ("" is the empty list).
func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func int64Of(key string, dst *int64) func(c *Config, v string) error {
	return func(c *Config, v string) error {
		if v == "" {
			*dst = 0
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return errs.Usagef("", "%s %q: want a whole number", key, v)
		}
		*dst = n
		return nil
	}
}

// settings are the keys of config.json, in the order config show lists them.
func settings(c *Config) []setting {
	fixedAtInit := "it is fixed at init (it decides whether gated features ask a person); set up a new state directory with bcagent init to change it"
	str := func(p *string) func(*Config) string { return func(*Config) string { return *p } }
	put := func(p *string) func(*Config, string) error {
		return func(_ *Config, v string) error { *p = v; return nil }
	}
	ss := []setting{
		{key: "repository_url", about: "the repository (https, or http to loopback)", get: str(&c.RepositoryURL),
			set: func(_ *Config, v string) error { c.RepositoryURL = strings.TrimRight(v, "/"); return nil }},
		{key: "channel", about: "release channel of every component", get: str(&c.Channel), set: put(&c.Channel)},
		{key: "platform", about: "OS-ARCH of the releases to install", get: str(&c.Platform), set: put(&c.Platform)},
		{key: "components", about: "components to keep up to date, comma-separated", get: func(*Config) string { return strings.Join(c.Components, ",") },
			set: func(_ *Config, v string) error { c.Components = list(v); return nil }},
		{key: "trust_dir", about: "code-signing trust directory (absolute path)", get: str(&c.TrustDir),
			set: func(_ *Config, v string) error {
				p, err := filepath.Abs(v)
				if err != nil || v == "" {
					return errs.Usagef("", "trust_dir %q: want a directory", v)
				}
				c.TrustDir = p
				return nil
			}},
		{key: "allowed_hosts", about: "other hosts the agent may connect to, comma-separated", get: func(*Config) string { return strings.Join(c.AllowedHosts, ",") },
			set: func(_ *Config, v string) error { c.AllowedHosts = list(v); return nil }},
		{key: "repository_mirrors", about: "more URLs of the repository, tried in order when repository_url fails, comma-separated", get: func(*Config) string { return strings.Join(c.RepositoryMirrors, ",") },
			set: func(_ *Config, v string) error {
				c.RepositoryMirrors = list(v)
				for i, m := range c.RepositoryMirrors {
					c.RepositoryMirrors[i] = strings.TrimRight(m, "/")
				}
				return nil
			}},
		{key: "notify_command", about: "command run with each new notification as JSON on stdin", get: func(*Config) string { return strings.Join(c.NotifyCommand, " ") },
			set: func(_ *Config, v string) error { c.NotifyCommand = strings.Fields(v); return nil }},
		{key: "poll_interval", about: "service poll interval, " + PollIntervalRange.String() + " (\"\": 1h)", get: str(&c.PollInterval), set: put(&c.PollInterval)},
		{key: "watch_dir", about: "drop folder the service imports offline bundles (*.bcbundle) from, an existing directory (\"\": none)", get: str(&c.WatchDir),
			set: func(_ *Config, v string) error {
				if v == "" {
					c.WatchDir = ""
					return nil
				}
				p, err := filepath.Abs(v)
				if err != nil {
					return errs.Usagef("", "watch_dir %q: want a directory", v)
				}
				c.WatchDir = filepath.Clean(p)
				return nil
			}},
		{key: "apply_window", about: "auto policy applies only between HH:MM-HH:MM local time (\"\": any time)", get: str(&c.ApplyWindow), set: put(&c.ApplyWindow)},
		{key: "max_rate", about: "download cap in bytes per second (0: none)", get: func(*Config) string { return strconv.FormatInt(c.MaxRate, 10) }, set: int64Of("max_rate", &c.MaxRate)},
		{key: "min_rate", about: "slowest download kept, bytes per second (0: the default)", get: func(*Config) string { return strconv.FormatInt(c.MinRate, 10) }, set: int64Of("min_rate", &c.MinRate)},
		{key: "min_rate_window", about: "min_rate is judged over each such duration (\"\": 30s)", get: str(&c.MinRateWindow), set: put(&c.MinRateWindow)},
		{key: "health_timeout", about: "how long a release's health check may take (\"\": 60s)", get: str(&c.HealthTimeout), set: put(&c.HealthTimeout)},
		{key: "installer_timeout", about: "how long a release's installer may take (\"\": 30m)", get: str(&c.InstallerTimeout), set: put(&c.InstallerTimeout)},
		{key: "phi_device_classes", about: "more device models treated as holding PHI, comma-separated (can only grow)", get: func(*Config) string { return strings.Join(c.PHIDeviceClasses, ",") },
			set: func(_ *Config, v string) error {
				next := list(v)
				for _, old := range c.PHIDeviceClasses {
					if !slices.Contains(next, old) {
						return errs.Usagef("", "phi_device_classes: %q cannot be removed (a PHI device class can be added, never removed here, so that no gated feature stops asking); give the whole list with the new class added", old)
					}
				}
				c.PHIDeviceClasses = next
				return nil
			}},
		{key: "min_policy_version", about: "the signed device policy version current at installation (can only go up)", get: func(*Config) string { return strconv.FormatInt(c.MinPolicyVersion, 10) },
			set: func(_ *Config, v string) error {
				old := c.MinPolicyVersion
				if err := int64Of("min_policy_version", &c.MinPolicyVersion)(c, v); err != nil {
					return err
				}
				if c.MinPolicyVersion < old {
					return errs.Usagef("", "min_policy_version %d is lower than %d: it can only go up (a lower floor would accept an older signed policy)", c.MinPolicyVersion, old)
				}
				return nil
			}},
		{key: "device_id", about: "this PC's instrument ID", get: str(&c.DeviceID), fixed: fixedAtInit},
		{key: "device_model", about: "this PC's instrument model", get: str(&c.DeviceModel), fixed: fixedAtInit},
		{key: "install_root", about: "where components are installed", get: str(&c.InstallRoot), fixed: "moving installed components is not supported; set up a new state directory with bcagent init --install-root"},
	}
	names := slices.Clone(c.Components)
	for comp := range c.Policies {
		if !slices.Contains(names, comp) {
			names = append(names, comp)
		}
	}
	for _, comp := range names {
		ss = append(ss, policySetting(c, comp))
	}
	return ss
}

// policySetting is policy.COMPONENT: notify, stage or auto ("": stage).
func policySetting(c *Config, comp string) setting {
	return setting{key: "policy." + comp, about: "what the service does with " + comp + "'s updates: notify, stage or auto",
		get: func(*Config) string { return string(c.Policy(comp)) },
		set: func(_ *Config, v string) error {
			if v == "" {
				delete(c.Policies, comp)
				return nil
			}
			if c.Policies == nil {
				c.Policies = map[string]Policy{}
			}
			c.Policies[comp] = Policy(v)
			return nil
		}}
}

// ConfigValue is one setting as bcagent config show prints it.
type ConfigValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	About string `json:"about"`
	// Fixed says why the setting cannot be changed with config set.
	Fixed string `json:"fixed,omitempty"`
}

// ConfigValues lists the settings of c.
func ConfigValues(c Config) []ConfigValue {
	var out []ConfigValue
	for _, s := range settings(&c) {
		out = append(out, ConfigValue{Key: s.key, Value: s.get(&c), About: s.about, Fixed: s.fixed})
	}
	return out
}

// findSetting is the setting key of c, or a usage error that lists them.
func findSetting(c *Config, key string) (setting, error) {
	ss := settings(c)
	for _, s := range ss {
		if s.key == key {
			return s, nil
		}
	}
	if comp, ok := strings.CutPrefix(key, "policy."); ok {
		return policySetting(c, comp), nil
	}
	var keys []string
	for _, s := range ss {
		if s.set != nil {
			keys = append(keys, s.key)
		}
	}
	hint := ""
	if s := suggest.Closest(key, keys); s != "" {
		hint = fmt.Sprintf("did you mean %s? ", s)
	}
	return setting{}, errs.Usagef("", "no setting %q: %sbcagent config set takes one of %s", key, hint, strings.Join(keys, ", "))
}

// SetConfig changes one setting of config.json (key as config show lists
// it; lists comma-separated, "" for the default or the empty list). The
// new configuration must pass every rule init's does; it is written
// atomically and audited, and takes effect at the service's next cycle.
// It returns the old and the new value.
func (a *Agent) SetConfig(key, value string) (before, after string, err error) {
	next := *a.cfg
	next.Components = slices.Clone(a.cfg.Components)
	next.AllowedHosts = slices.Clone(a.cfg.AllowedHosts)
	next.PHIDeviceClasses = slices.Clone(a.cfg.PHIDeviceClasses)
	next.NotifyCommand = slices.Clone(a.cfg.NotifyCommand)
	if a.cfg.Policies != nil {
		next.Policies = make(map[string]Policy, len(a.cfg.Policies))
		for k, v := range a.cfg.Policies {
			next.Policies[k] = v
		}
	}
	s, err := findSetting(&next, key)
	if err != nil {
		return "", "", err
	}
	if s.set == nil {
		return "", "", errs.Usagef("", "%s cannot be changed with bcagent config set: %s", key, s.fixed)
	}
	before = s.get(&next)
	if err := s.set(&next, value); err != nil {
		return "", "", err
	}
	after = s.get(&next)
	if key == "components" {
		for comp := range next.Policies {
			if !slices.Contains(next.Components, comp) {
				return "", "", errs.Usagef("", "components: %s has policy %s: remove it first (bcagent config set policy.%s \"\")", comp, next.Policies[comp], comp)
			}
		}
	}
	if err := next.validateAs(key); err != nil {
		return "", "", err
	}
	if next.TrustDir != a.cfg.TrustDir {
		if err := next.checkPermissions(a.dir); err != nil {
			return "", "", err
		}
		if _, err := signer.LoadTrust(next.TrustDir); err != nil {
			return "", "", errs.Usagef("", "trust_dir %s: %v", next.TrustDir, err)
		}
	}
	if key == "watch_dir" && next.WatchDir != "" {
		if err := CheckWatchDir("watch_dir", next.WatchDir, a.dir); err != nil {
			return "", "", err
		}
	}
	if before == after {
		return before, after, nil
	}
	if err := writeJSON(filepath.Join(a.dir, "config.json"), &next, 0o600); err != nil {
		return "", "", err
	}
	*a.cfg = next
	a.audit(AuditEvent{Event: EventConfigChanged, By: osUser(), Detail: fmt.Sprintf("%s: %q -> %q", key, before, after)})
	return before, after, nil
}

// validateAs is Validate for a change made with config set: the first
// rule's error in the words of config.json's keys, not init's flags.
func (c *Config) validateAs(key string) error {
	for _, r := range configRules {
		err := r.check(c)
		if err == nil {
			continue
		}
		msg := err.Error()
		keys := strings.Split(r.key, ", ")
		for i, f := range strings.Split(r.flag, ", ") {
			k := keys[min(i, len(keys)-1)]
			if strings.HasPrefix(key, "policy.") && f == "--policy" {
				k = "policy."
			}
			msg = strings.ReplaceAll(msg, f+" (config.json "+k+")", k)
			msg = strings.ReplaceAll(msg, f+" ", k+" ")
			msg = strings.ReplaceAll(msg, f+":", k+":")
		}
		msg = strings.ReplaceAll(msg, "policy. ", "policy.")
		if !strings.Contains(msg, strings.Split(key, ".")[0]) {
			msg = key + ": " + msg
		}
		return errs.Usage("", errors.New(msg))
	}
	return nil
}
