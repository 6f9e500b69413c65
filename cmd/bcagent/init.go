package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "set up the state directory: repository, trusted root, trust directory, device, components",
		Flags: []cli.Flag{
			cliutil.Req(&cli.StringSliceFlag{Name: "repo-url", Usage: "repository `URL` (https, or http to loopback); repeat it (or give a comma-separated list) for mirrors, tried in order", EnvVars: []string{"BCAGENT_REPO_URL"}}),
			cliutil.Req(&cli.StringFlag{Name: "root", Usage: "the repository's trusted `ROOT.json`, delivered with the agent", EnvVars: []string{"BCAGENT_ROOT"}}),
			cliutil.Req(&cli.StringFlag{Name: "trust", Usage: "code-signing trust `DIR` (roots/, publishers; docs/operations.md step 3)", EnvVars: []string{"BCAGENT_TRUST"}}),
			cliutil.Req(&cli.StringSliceFlag{Name: "component", Usage: "component `NAME` to keep up to date (repeatable)", EnvVars: []string{"BCAGENT_COMPONENT"}}),
			cliutil.Req(&cli.StringFlag{Name: "device-id", Usage: "this PC's instrument `ID`", EnvVars: []string{"BCAGENT_DEVICE_ID"}}),
			cliutil.Req(&cli.StringFlag{Name: "device-model", Usage: "this PC's instrument `MODEL`, e.g. \"Navios EX\"", EnvVars: []string{"BCAGENT_DEVICE_MODEL"}}),
			&cli.StringFlag{Name: "platform", Usage: "`OS-ARCH` (default: this machine's)", EnvVars: []string{"BCAGENT_PLATFORM"}},
			&cli.StringFlag{Name: "channel", Value: "stable", Usage: "release `CHANNEL`", EnvVars: []string{"BCAGENT_CHANNEL"}},
			&cli.StringSliceFlag{Name: "allow-host", Usage: "another `HOST` the agent may connect to, e.g. a CDN (repeatable)", EnvVars: []string{"BCAGENT_ALLOW_HOST"}},
			&cli.StringSliceFlag{Name: "phi-device-class", Usage: "another device `MODEL` to treat as holding PHI (adds to the signed policy; repeatable)", EnvVars: []string{"BCAGENT_PHI_DEVICE_CLASS"}},
			&cli.Int64Flag{Name: "min-policy-version", Usage: "the device policy `VERSION` current at installation, " + client.MinPolicyVersionRange.String() + ": until the agent has seen a signed policy at least this new, features gated for PHI devices ask on this PC", EnvVars: []string{"BCAGENT_MIN_POLICY_VERSION"}},
			&cli.StringFlag{Name: "notify-command", Usage: "`COMMAND` run with each new notification as JSON on stdin", EnvVars: []string{"BCAGENT_NOTIFY_COMMAND"}},
			&cli.StringFlag{Name: "poll-interval", Usage: "service poll `INTERVAL`, " + client.PollIntervalRange.String() + " (default: 1h)", EnvVars: []string{"BCAGENT_POLL_INTERVAL"}},
			&cli.StringSliceFlag{Name: "policy", Usage: "`COMPONENT=POLICY`: notify, stage (default) or auto (repeatable)", EnvVars: []string{"BCAGENT_POLICY"}},
			&cli.StringFlag{Name: "apply-window", Usage: "apply only between `HH:MM-HH:MM` local time (auto policy)", EnvVars: []string{"BCAGENT_APPLY_WINDOW"}},
			&cli.Int64Flag{Name: "max-rate", Usage: "cap downloads at `BYTES` per second, " + client.MaxRateRange.String(), EnvVars: []string{"BCAGENT_MAX_RATE"}},
			&cli.Int64Flag{Name: "min-rate", Usage: "fail a download that brings fewer than `BYTES` per second over --min-rate-window (a dripping server), " + client.MinRateRange.String(), DefaultText: "1024", EnvVars: []string{"BCAGENT_MIN_RATE"}},
			&cli.StringFlag{Name: "min-rate-window", Usage: "judge --min-rate over each `DURATION` of waiting for the server, " + client.MinRateWindowRange.String() + " (default: 30s)", EnvVars: []string{"BCAGENT_MIN_RATE_WINDOW"}},
			&cli.StringFlag{Name: "health-timeout", Usage: "`DURATION` a release's health check may take, " + client.HealthTimeoutRange.String() + " (default: 60s)", EnvVars: []string{"BCAGENT_HEALTH_TIMEOUT"}},
			&cli.StringFlag{Name: "installer-timeout", Usage: "`DURATION` a release's installer may take, " + client.InstallerTimeoutRange.String() + " (default: 30m)", EnvVars: []string{"BCAGENT_INSTALLER_TIMEOUT"}},
			&cli.StringFlag{Name: "install-root", Usage: "`DIR` where components are installed (default: STATE/install)", EnvVars: []string{"BCAGENT_INSTALL_ROOT"}},
		},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runInit(c.Context, globals(c), initOptions{
				RepoURL: first(c.StringSlice("repo-url")), RepoMirrors: rest(c.StringSlice("repo-url")), Root: c.String("root"), Trust: c.String("trust"),
				Components: c.StringSlice("component"), DeviceID: c.String("device-id"), DeviceModel: c.String("device-model"),
				Platform: c.String("platform"), Channel: c.String("channel"), AllowHosts: c.StringSlice("allow-host"),
				PHIDeviceClasses: c.StringSlice("phi-device-class"), MinPolicyVersion: c.Int64("min-policy-version"),
				NotifyCommand: c.String("notify-command"), PollInterval: c.String("poll-interval"), Policies: c.StringSlice("policy"),
				ApplyWindow: c.String("apply-window"), MaxRate: c.Int64("max-rate"), MinRate: c.Int64("min-rate"), MinRateSet: c.IsSet("min-rate"),
				MinRateWindow: c.String("min-rate-window"), HealthTimeout: c.String("health-timeout"),
				InstallerTimeout: c.String("installer-timeout"), InstallRoot: c.String("install-root"),
				Args: c.Args().Slice(),
			})
		},
	}
}

// initOptions are bcagent init's flags, one field each.
type initOptions struct {
	RepoURL, Root, Trust  string
	RepoMirrors           []string // the further --repo-url values
	Components            []string
	DeviceID, DeviceModel string
	Platform, Channel     string
	AllowHosts            []string
	PHIDeviceClasses      []string
	MinPolicyVersion      int64
	NotifyCommand         string
	PollInterval          string
	Policies              []string // COMPONENT=POLICY
	ApplyWindow           string
	MaxRate, MinRate      int64
	MinRateSet            bool // --min-rate was given (0 then is an error, not the default)
	MinRateWindow         string
	HealthTimeout         string
	InstallerTimeout      string
	InstallRoot           string
	Args                  []string
}

// runInit sets up the state directory g.State.
func runInit(ctx context.Context, g *globalOptions, o initOptions) error {
	if err := cliutil.NoArgs(o.Args); err != nil {
		return err
	}
	if err := cliutil.Required([]string{"repo-url", "root", "trust", "component", "device-id", "device-model"}, o.RepoURL, o.Root, o.Trust, strings.Join(o.Components, ","), o.DeviceID, o.DeviceModel); err != nil {
		return err
	}
	if o.MinRateSet && o.MinRate == 0 {
		// 0 in config.json means the default; given here it would
		// read as "no rule", which there is not.
		return cliutil.Usagef("min-rate", "--min-rate 0 is out of range: want %s (the rule cannot be turned off; leave the flag out for the default %d)", client.MinRateRange, client.DefaultMinRate)
	}
	policies := map[string]client.Policy{}
	for _, p := range o.Policies {
		comp, pol, ok := strings.Cut(p, "=")
		if !ok {
			return cliutil.Usagef("policy", "--policy %q: want COMPONENT=notify|stage|auto", p)
		}
		policies[comp] = client.Policy(pol)
	}
	err := client.Init(g.State, client.InitOptions{
		RootFile:     o.Root,
		AgentVersion: version,
		Config: client.Config{
			RepositoryURL:     o.RepoURL,
			RepositoryMirrors: o.RepoMirrors,
			Components:        o.Components,
			Platform:          o.Platform,
			Channel:           o.Channel,
			DeviceID:          o.DeviceID,
			DeviceModel:       o.DeviceModel,
			TrustDir:          o.Trust,
			AllowedHosts:      o.AllowHosts,
			InstallRoot:       o.InstallRoot,
			PHIDeviceClasses:  o.PHIDeviceClasses,
			MinPolicyVersion:  o.MinPolicyVersion,
			NotifyCommand:     strings.Fields(o.NotifyCommand),
			PollInterval:      o.PollInterval,
			Policies:          policies,
			ApplyWindow:       o.ApplyWindow,
			MaxRate:           o.MaxRate,
			MinRate:           o.MinRate,
			MinRateWindow:     o.MinRateWindow,
			HealthTimeout:     o.HealthTimeout,
			InstallerTimeout:  o.InstallerTimeout,
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "initialized agent state %s for %s (%s), components %s, repository %s\n",
		g.State, esc(o.DeviceID), esc(o.DeviceModel), esc(fmt.Sprint(o.Components)), esc(strings.Join(append([]string{o.RepoURL}, o.RepoMirrors...), ", then ")))
	// PHI classes are matched normalized (case, spacing, Unicode
	// form); say which way this model went, so a typo is seen now.
	// The normalized name is shown ASCII-quoted, so a look-alike
	// letter (a Cyrillic о in "Navios EX") is visible.
	if known, norm := client.KnownModel(o.DeviceModel, o.PHIDeviceClasses); known {
		fmt.Fprintf(g.Stdout, "device model %s (normalized %+q) is in a PHI device class: gated features ask a person first\n", esc(o.DeviceModel), norm)
	} else {
		fmt.Fprintf(g.Stderr, "bcagent: warning: device model %s (normalized %+q) is in no known PHI device class (%s); features gated for PHI devices will turn on without asking unless the signed device policy names it: check the spelling, or add --phi-device-class\n",
			esc(o.DeviceModel), norm, strings.Join(client.BuiltinPHIClasses(), ", "))
	}
	a, err := client.Open(g.State, &client.OpenOptions{Log: g.logger(), UserAgent: userAgent(), Events: agentEvents()})
	if err != nil {
		fmt.Fprintf(g.Stderr, "bcagent: warning: could not open the new state directory to look at the repository: %s\n", esc(err.Error()))
		return nil
	}
	defer a.Close()
	probeRepository(ctx, g, a, "--root")
	return nil
}

// initProbeTimeout bounds the look at the repository that init takes.
const initProbeTimeout = 20 * time.Second

// probeRepository looks at the repository once, right after init or a
// config set that changes where the agent looks, and warns about what
// would otherwise only show at the next check: a server that cannot be
// reached, a root that is not this repository's, a component with no
// release on the channel. The change stands either way (the repository
// may come up later).
func probeRepository(ctx context.Context, g *globalOptions, a *client.Agent, rootFrom string) {
	ctx, cancel := context.WithTimeout(ctx, initProbeTimeout)
	defer cancel()
	warn := func(format string, args ...any) {
		fmt.Fprintf(g.Stderr, "bcagent: warning: "+format+"\n", args...)
	}
	missing, err := a.Unpublished(ctx)
	switch {
	case errors.Is(err, client.ErrVerification) && rootFrom == "--root":
		warn("the repository does not verify against the trusted root given with --root (is it this repository's root.json?): %s; remove the new state directory and run bcagent init again with the right --root", esc(err.Error()))
	case errors.Is(err, client.ErrVerification):
		warn("the repository does not verify against this PC's trusted root (is repository_url another repository?): %s", esc(err.Error()))
	case err != nil:
		warn("%s; run bcagent check once it can be reached", esc(err.Error()))
	}
	for _, m := range missing {
		warn("%s", esc(m))
	}
}

// first and rest split a repeated flag's values: --repo-url's first is the
// repository, the rest its mirrors in order.
func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func rest(v []string) []string {
	if len(v) < 2 {
		return nil
	}
	return v[1:]
}
