package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "set up the state directory: repository, trusted root, trust directory, device, components",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "repo-url", Usage: "repository `URL` (https, or http to loopback)", EnvVars: []string{"BCAGENT_REPO_URL"}},
			&cli.StringFlag{Name: "root", Usage: "the repository's trusted `ROOT.json`, delivered with the agent", EnvVars: []string{"BCAGENT_ROOT"}},
			&cli.StringFlag{Name: "trust", Usage: "code-signing trust `DIR`", EnvVars: []string{"BCAGENT_TRUST"}},
			&cli.StringSliceFlag{Name: "component", Usage: "component `NAME` to keep up to date (repeatable)", EnvVars: []string{"BCAGENT_COMPONENT"}},
			&cli.StringFlag{Name: "device-id", Usage: "this PC's instrument `ID`", EnvVars: []string{"BCAGENT_DEVICE_ID"}},
			&cli.StringFlag{Name: "device-model", Usage: "this PC's instrument `MODEL`, e.g. \"Navios EX\"", EnvVars: []string{"BCAGENT_DEVICE_MODEL"}},
			&cli.StringFlag{Name: "platform", Usage: "`OS-ARCH` (default: this machine's)", EnvVars: []string{"BCAGENT_PLATFORM"}},
			&cli.StringFlag{Name: "channel", Value: "stable", Usage: "release `CHANNEL`", EnvVars: []string{"BCAGENT_CHANNEL"}},
			&cli.StringSliceFlag{Name: "allow-host", Usage: "another `HOST` the agent may connect to, e.g. a CDN (repeatable)", EnvVars: []string{"BCAGENT_ALLOW_HOST"}},
			&cli.StringSliceFlag{Name: "phi-device-class", Usage: "another device `MODEL` to treat as holding PHI (adds to the signed policy; repeatable)", EnvVars: []string{"BCAGENT_PHI_DEVICE_CLASS"}},
			&cli.Int64Flag{Name: "min-policy-version", Usage: "the device policy `VERSION` current at installation, " + client.MinPolicyVersionRange.String() + ": until the agent has seen a signed policy at least this new, features gated for PHI devices ask on this PC", EnvVars: []string{"BCAGENT_MIN_POLICY_VERSION"}},
			&cli.StringFlag{Name: "notify-command", Usage: "`COMMAND` run with each new notification as JSON on stdin", EnvVars: []string{"BCAGENT_NOTIFY_COMMAND"}},
			&cli.StringFlag{Name: "poll-interval", Usage: "service poll `INTERVAL`, " + client.PollIntervalRange.String() + " (default 1h)", EnvVars: []string{"BCAGENT_POLL_INTERVAL"}},
			&cli.StringSliceFlag{Name: "policy", Usage: "`COMPONENT=POLICY`: notify, stage (default) or auto (repeatable)", EnvVars: []string{"BCAGENT_POLICY"}},
			&cli.StringFlag{Name: "apply-window", Usage: "apply only between `HH:MM-HH:MM` local time (auto policy)", EnvVars: []string{"BCAGENT_APPLY_WINDOW"}},
			&cli.Int64Flag{Name: "max-rate", Usage: "cap downloads at `BYTES` per second, " + client.MaxRateRange.String(), EnvVars: []string{"BCAGENT_MAX_RATE"}},
			&cli.Int64Flag{Name: "min-rate", Usage: "fail a download that brings fewer than `BYTES` per second over --min-rate-window (a dripping server), " + client.MinRateRange.String() + " (default 1024)", EnvVars: []string{"BCAGENT_MIN_RATE"}},
			&cli.StringFlag{Name: "min-rate-window", Usage: "judge --min-rate over each `DURATION` of waiting for the server, " + client.MinRateWindowRange.String() + " (default 30s)", EnvVars: []string{"BCAGENT_MIN_RATE_WINDOW"}},
			&cli.StringFlag{Name: "health-timeout", Usage: "`DURATION` a release's health check may take, " + client.HealthTimeoutRange.String() + " (default 60s)", EnvVars: []string{"BCAGENT_HEALTH_TIMEOUT"}},
			&cli.StringFlag{Name: "installer-timeout", Usage: "`DURATION` a release's installer may take, " + client.InstallerTimeoutRange.String() + " (default 30m)", EnvVars: []string{"BCAGENT_INSTALLER_TIMEOUT"}},
			&cli.StringFlag{Name: "install-root", Usage: "where components are installed (default: STATE/install)", EnvVars: []string{"BCAGENT_INSTALL_ROOT"}},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usageErr("unexpected argument %q", c.Args().First())
			}
			for _, f := range []string{"repo-url", "root", "trust", "device-id", "device-model"} {
				if c.String(f) == "" {
					return usageErr("--%s is required", f)
				}
			}
			if c.IsSet("min-rate") && c.Int64("min-rate") == 0 {
				// 0 in config.json means the default; given here it would
				// read as "no rule", which there is not.
				return usageErr("--min-rate 0 is out of range: want %s (the rule cannot be turned off; leave the flag out for the default %d)", client.MinRateRange, client.DefaultMinRate)
			}
			policies := map[string]string{}
			for _, p := range c.StringSlice("policy") {
				comp, pol, ok := strings.Cut(p, "=")
				if !ok {
					return usageErr("--policy %q: want COMPONENT=notify|stage|auto", p)
				}
				policies[comp] = pol
			}
			err := client.Init(c.String("state"), client.InitOptions{
				RootFile:     c.String("root"),
				AgentVersion: version,
				Config: client.Config{
					RepositoryURL:    c.String("repo-url"),
					Components:       c.StringSlice("component"),
					Platform:         c.String("platform"),
					Channel:          c.String("channel"),
					DeviceID:         c.String("device-id"),
					DeviceModel:      c.String("device-model"),
					TrustDir:         c.String("trust"),
					AllowedHosts:     c.StringSlice("allow-host"),
					InstallRoot:      c.String("install-root"),
					PHIDeviceClasses: c.StringSlice("phi-device-class"),
					MinPolicyVersion: c.Int64("min-policy-version"),
					NotifyCommand:    strings.Fields(c.String("notify-command")),
					PollInterval:     c.String("poll-interval"),
					Policies:         policies,
					ApplyWindow:      c.String("apply-window"),
					MaxRate:          c.Int64("max-rate"),
					MinRate:          c.Int64("min-rate"),
					MinRateWindow:    c.String("min-rate-window"),
					HealthTimeout:    c.String("health-timeout"),
					InstallerTimeout: c.String("installer-timeout"),
				},
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "initialized agent state %s for %s (%s), components %s, repository %s\n",
				c.String("state"), esc(c.String("device-id")), esc(c.String("device-model")), esc(fmt.Sprint(c.StringSlice("component"))), esc(c.String("repo-url")))
			// PHI classes are matched normalized (case, spacing, Unicode
			// form); say which way this model went, so a typo is seen now.
			// The normalized name is shown ASCII-quoted, so a look-alike
			// letter (a Cyrillic о in "Navios EX") is visible.
			if known, norm := client.KnownModel(c.String("device-model"), c.StringSlice("phi-device-class")); known {
				fmt.Fprintf(c.App.Writer, "device model %s (normalized %+q) is in a PHI device class: gated features ask a person first\n", esc(c.String("device-model")), norm)
			} else {
				fmt.Fprintf(c.App.ErrWriter, "bcagent: warning: device model %s (normalized %+q) is in no known PHI device class (%s); features gated for PHI devices will turn on without asking unless the signed device policy names it: check the spelling, or add --phi-device-class\n",
					esc(c.String("device-model")), norm, strings.Join(client.BuiltinPHIClasses(), ", "))
			}
			return nil
		},
	}
}
