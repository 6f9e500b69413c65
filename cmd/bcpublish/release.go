package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

func releaseCommand() *cli.Command {
	return &cli.Command{
		Name:         "release",
		Usage:        "add, gate, list, promote and yank releases",
		OnUsageError: cliutil.OnUsageError,
		Subcommands:  []*cli.Command{releaseAddCommand(), releaseGateCommand(), releaseListCommand(), releasePromoteCommand(), releaseYankCommand()},
	}
}

func releaseAddCommand() *cli.Command {
	return &cli.Command{
		Name:  "add",
		Usage: "publish a code-signed artifact and point channels at it",
		Flags: withS3Write(withKeys(true, onlineRoles,
			repoFlag(), keysFlag(), trustFlag(),
			&cli.StringFlag{Name: "component", Usage: "component `NAME` (lowercase, digits, -)", EnvVars: []string{"BCPUBLISH_COMPONENT"}},
			&cli.StringFlag{Name: "version", Usage: "semantic `VERSION` such as 1.1.0", EnvVars: []string{"BCPUBLISH_VERSION"}},
			&cli.StringFlag{Name: "platform", Usage: "`OS-ARCH` such as windows-amd64", EnvVars: []string{"BCPUBLISH_PLATFORM"}},
			&cli.StringFlag{Name: "file", Usage: "the `ARTIFACT` to publish", EnvVars: []string{"BCPUBLISH_FILE"}},
			&cli.StringFlag{Name: "signature", Usage: "detached CMS signature `FILE.p7s` (default: ARTIFACT.p7s)", EnvVars: []string{"BCPUBLISH_SIGNATURE"}},
			&cli.StringSliceFlag{Name: "channel", Usage: "channel `NAME` to point at this release (repeatable; default stable)", EnvVars: []string{"BCPUBLISH_CHANNEL"}},
			&cli.StringSliceFlag{Name: "delta-from", Usage: "also publish a bsdiff patch from earlier `VERSION` (repeatable; needs bsdiff)", EnvVars: []string{"BCPUBLISH_DELTA_FROM"}},
			&cli.IntFlag{Name: "percent", Usage: "staged rollout: only `P` percent of devices take it", DefaultText: "all", EnvVars: []string{"BCPUBLISH_PERCENT"}},
			&cli.StringFlag{Name: "install", Usage: "install `KIND`: archive, file, installer or self (default: archive for .tar.gz/.zip, else file)", EnvVars: []string{"BCPUBLISH_INSTALL"}},
			&cli.StringFlag{Name: "installer", Usage: "installer `COMMAND` for --install installer; {file} is the installer (default: for .msi, msiexec /i {file} /qn /norestart)", EnvVars: []string{"BCPUBLISH_INSTALLER"}},
			&cli.StringSliceFlag{Name: "feature", Usage: "feature `ID[:required|phi-devices|none]` the release turns on (repeatable; default consent: required)", EnvVars: []string{"BCPUBLISH_FEATURE"}},
			&cli.StringSliceFlag{Name: "feature-text", Usage: "`ID=FILE`: the feature's title (first line) and full description, shown to the person who authorizes it", EnvVars: []string{"BCPUBLISH_FEATURE_TEXT"}},
			&cli.StringFlag{Name: "health-check", Usage: "`COMMAND` the agent runs after installing, e.g. \"bin/nc --version\"", EnvVars: []string{"BCPUBLISH_HEALTH_CHECK"}},
			&cli.StringFlag{Name: "gate", Usage: "code-signed gate manifest `GATE.json` from bcpublish release gate (features are read from it)", EnvVars: []string{"BCPUBLISH_GATE"}},
			&cli.StringFlag{Name: "gate-signature", Usage: "the gate manifest's detached code signature `FILE.p7s` (default: GATE.json.p7s)", EnvVars: []string{"BCPUBLISH_GATE_SIGNATURE"}},
			codesignFlags()[0], codesignFlags()[1],
		)...),
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runReleaseAdd(c.Context, globals(c), releaseAddOptions{Store: storeOpts(c, "repo"), Keys: keyOpts(c), Trust: c.String("trust"),
				Component: c.String("component"), Version: c.String("version"), Platform: c.String("platform"), File: c.String("file"),
				Signature: c.String("signature"), Channels: c.StringSlice("channel"), DeltaFrom: c.StringSlice("delta-from"), Percent: c.Int("percent"),
				Install: c.String("install"), Installer: c.String("installer"), Features: c.StringSlice("feature"), FeatureTexts: c.StringSlice("feature-text"),
				HealthCheck: c.String("health-check"), Gate: c.String("gate"), GateSignature: c.String("gate-signature"), CodeSign: codesignOpts(c),
				Args: c.Args().Slice()})
		},
	}
}

// releaseAddOptions are bcpublish release add's flags.
type releaseAddOptions struct {
	Store                              storeOptions
	Keys                               keyOptions
	Trust                              string
	Component, Version, Platform, File string
	Signature                          string
	Channels, DeltaFrom                []string
	Percent                            int
	Install, Installer                 string
	Features, FeatureTexts             []string
	HealthCheck                        string
	Gate, GateSignature                string
	CodeSign                           codesignOptions
	Args                               []string
}

func runReleaseAdd(ctx context.Context, g *globalOptions, o releaseAddOptions) error {
	if err := need(o.Args, "repo", o.Store.Location, "keys", o.Keys.given(), "trust", o.Trust, "component", o.Component,
		"version", o.Version, "platform", o.Platform, "file", o.File); err != nil {
		return err
	}
	s, err := o.Store.open(ctx)
	if err != nil {
		return err
	}
	trust, err := signer.LoadTrust(o.Trust)
	if err != nil {
		return cliutil.Usagef("trust", "--trust: %v", err)
	}
	keys, err := o.Keys.load(ctx, repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp)
	if err != nil {
		return err
	}
	features, err := publisher.ParseFeatures(o.Features, o.FeatureTexts)
	if err != nil {
		return err
	}
	sign, err := o.CodeSign.signer()
	if err != nil {
		return err
	}
	var gate, gateSig []byte
	if o.Gate != "" {
		if gate, gateSig, err = publisher.ReadGate(o.Gate, o.GateSignature); err != nil {
			return err
		}
	}
	var res *publisher.ReleaseResult
	err = o.Keys.retrying(ctx, func() (err error) {
		res, err = publisher.AddRelease(ctx, s, keys, trust, publisher.ReleaseOptions{
			Features:      features,
			Component:     o.Component,
			Version:       o.Version,
			Platform:      o.Platform,
			File:          o.File,
			Signature:     o.Signature,
			Channels:      o.Channels,
			Install:       o.Install,
			HealthCheck:   strings.Fields(o.HealthCheck),
			Installer:     strings.Fields(o.Installer),
			Percent:       o.Percent,
			DeltaFrom:     o.DeltaFrom,
			GateManifest:  gate,
			GateSignature: gateSig,
			GateSign:      sign,
		}, nil)
		return err
	})
	if err != nil {
		return err
	}
	if res.AlreadyPresent {
		fmt.Fprintf(g.Stdout, "%s is already published with this content; nothing changed\n", res.Path)
		return nil
	}
	fmt.Fprintf(g.Stdout, "published %s (%d bytes, sha256 %.12s…, signed by %s) on channel %s; targets v%d, timestamp v%d\n",
		res.Path, res.Length, res.SHA256, res.Verified.Publisher, strings.Join(res.Channels, ","), res.TargetsVersion, res.TimestampVersion)
	for _, w := range res.Warnings {
		fmt.Fprintf(g.Stderr, "warning: %s\n", w)
	}
	return nil
}

func releaseGateCommand() *cli.Command {
	return &cli.Command{
		Name:  "gate",
		Usage: "write the gate manifest of a release with features, for the publisher to code-sign (then release add --gate)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "component", Usage: "component `NAME`", EnvVars: []string{"BCPUBLISH_COMPONENT"}},
			&cli.StringFlag{Name: "version", Usage: "semantic `VERSION`", EnvVars: []string{"BCPUBLISH_VERSION"}},
			&cli.StringFlag{Name: "platform", Usage: "`OS-ARCH`", EnvVars: []string{"BCPUBLISH_PLATFORM"}},
			&cli.StringFlag{Name: "file", Usage: "the `ARTIFACT` the release publishes", EnvVars: []string{"BCPUBLISH_FILE"}},
			&cli.StringSliceFlag{Name: "feature", Usage: "feature `ID[:required|phi-devices|none]` (repeatable)", EnvVars: []string{"BCPUBLISH_FEATURE"}},
			&cli.StringSliceFlag{Name: "feature-text", Usage: "`ID=FILE`: title (first line) and full description", EnvVars: []string{"BCPUBLISH_FEATURE_TEXT"}},
			&cli.StringFlag{Name: "out", Usage: "write the manifest to `GATE.json`", EnvVars: []string{"BCPUBLISH_OUT"}},
		},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runReleaseGate(c.Context, globals(c), releaseGateOptions{Component: c.String("component"), Version: c.String("version"),
				Platform: c.String("platform"), File: c.String("file"), Features: c.StringSlice("feature"), FeatureTexts: c.StringSlice("feature-text"),
				Out: c.String("out"), Args: c.Args().Slice()})
		},
	}
}

// releaseGateOptions are bcpublish release gate's flags.
type releaseGateOptions struct {
	Component, Version, Platform, File string
	Features, FeatureTexts             []string
	Out                                string
	Args                               []string
}

func runReleaseGate(_ context.Context, g *globalOptions, o releaseGateOptions) error {
	if err := need(o.Args, "component", o.Component, "version", o.Version, "platform", o.Platform, "file", o.File, "out", o.Out); err != nil {
		return err
	}
	features, err := publisher.ParseFeatures(o.Features, o.FeatureTexts)
	if err != nil {
		return err
	}
	m, err := publisher.GateManifestFor(publisher.ReleaseOptions{Component: o.Component, Version: o.Version,
		Platform: o.Platform, File: o.File, Features: features})
	if err != nil {
		return err
	}
	if err := publisher.WriteFile(o.Out, m); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "wrote %s; sign it with the code-signing key (bcpublish codesign sign --file %s, signtool /p7 or openssl cms), then bcpublish release add … --gate %s\n",
		o.Out, o.Out, o.Out)
	return nil
}

func releaseListCommand() *cli.Command {
	return &cli.Command{
		Name:         "list",
		Usage:        "list published releases and their channels",
		Flags:        withS3(repoFlag(), jsonFlag()),
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runReleaseList(c.Context, globals(c), releaseListOptions{Store: storeOpts(c, "repo"), JSON: c.Bool("json"), Args: c.Args().Slice()})
		},
	}
}

// releaseListOptions are bcpublish release list's flags.
type releaseListOptions struct {
	Store storeOptions
	JSON  bool
	Args  []string
}

func runReleaseList(ctx context.Context, g *globalOptions, o releaseListOptions) error {
	if err := need(o.Args, "repo", o.Store.Location); err != nil {
		return err
	}
	s, err := o.Store.open(ctx)
	if err != nil {
		return err
	}
	list, err := publisher.ListReleases(ctx, s)
	if err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		if list == nil {
			list = []publisher.ReleaseInfo{}
		}
		return enc.Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintln(g.Stdout, "no releases published yet")
		return nil
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tPLATFORM\tVERSION\tCHANNELS\tRELEASED\tSIZE\tPATH\tYANKED")
	for _, r := range list {
		ch := strings.Join(r.Channels, ",")
		if ch == "" {
			ch = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Component, r.Platform, r.Version, ch, r.Released, r.Length, r.Path, yankedColumn(r))
	}
	return tw.Flush()
}

// yankedColumn is release list's YANKED column: "-", or "yes: REASON".
// The reason was checked for control characters when it was published
// (repo.ParseRelease refuses them).
func yankedColumn(r publisher.ReleaseInfo) string {
	switch {
	case !r.Yanked:
		return "-"
	case r.YankReason == "":
		return "yes"
	}
	return "yes: " + r.YankReason
}

func releasePromoteCommand() *cli.Command {
	return &cli.Command{
		Name:  "promote",
		Usage: "point a channel at the release another names (or change a channel's rollout share)",
		Flags: withS3Write(withKeys(true, onlineRoles, repoFlag(), keysFlag(),
			&cli.StringFlag{Name: "component", Usage: "component `NAME`", EnvVars: []string{"BCPUBLISH_COMPONENT"}},
			&cli.StringFlag{Name: "platform", Usage: "`OS-ARCH`", EnvVars: []string{"BCPUBLISH_PLATFORM"}},
			&cli.StringFlag{Name: "from", Usage: "source `CHANNEL`", EnvVars: []string{"BCPUBLISH_FROM"}},
			&cli.StringFlag{Name: "to", Usage: "target `CHANNEL`", EnvVars: []string{"BCPUBLISH_TO"}},
			&cli.IntFlag{Name: "percent", Value: 100, Usage: "share of devices, `P` percent (staged rollout)", EnvVars: []string{"BCPUBLISH_PERCENT"}},
			&cli.StringFlag{Name: "fleet", Usage: "ask the fleet service at `URL` first: refuse if the release fails on too many devices", EnvVars: []string{"BCPUBLISH_FLEET"}},
			&cli.StringFlag{Name: "fleet-token", Usage: "your sign-on ID `TOKEN` for --fleet (better in the environment)", EnvVars: []string{"BCPUBLISH_FLEET_TOKEN"}},
			&cli.StringFlag{Name: "max-failure-rate", Value: "2%", Usage: "with --fleet: the highest share of reporting devices, `RATE`, that may have failed or rolled back", EnvVars: []string{"BCPUBLISH_MAX_FAILURE_RATE"}},
		)...),
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runReleasePromote(c.Context, globals(c), releasePromoteOptions{Store: storeOpts(c, "repo"), Keys: keyOpts(c),
				Component: c.String("component"), Platform: c.String("platform"), From: c.String("from"), To: c.String("to"),
				Percent: c.Int("percent"), Fleet: c.String("fleet"), FleetToken: c.String("fleet-token"), MaxFailureRate: c.String("max-failure-rate"),
				Args: c.Args().Slice()})
		},
	}
}

// releasePromoteOptions are bcpublish release promote's flags.
type releasePromoteOptions struct {
	Store                         storeOptions
	Keys                          keyOptions
	Component, Platform, From, To string
	Percent                       int
	Fleet, FleetToken             string
	MaxFailureRate                string
	Args                          []string
}

func runReleasePromote(ctx context.Context, g *globalOptions, o releasePromoteOptions) error {
	s, keys, err := openForPublish(ctx, o.Store, o.Keys, o.Args, "component", o.Component, "platform", o.Platform, "from", o.From, "to", o.To)
	if err != nil {
		return err
	}
	var guard func(string) error
	if o.Fleet != "" {
		rate, err := publisher.ParseRate(o.MaxFailureRate)
		if err != nil {
			return err
		}
		g := &publisher.RolloutGuard{Fleet: o.Fleet, Token: o.FleetToken, MaxFailureRate: rate}
		guard = func(version string) error { return g.Check(ctx, o.Component, version) }
	}
	var rel string
	err = o.Keys.retrying(ctx, func() (err error) {
		rel, err = publisher.PromoteGuarded(ctx, s, keys, o.Component, o.Platform, o.From, o.To, o.Percent, timeNow(), guard)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "channel %s now names %s for %d%% of devices\n", o.To, rel, o.Percent)
	return nil
}

func releaseYankCommand() *cli.Command {
	return &cli.Command{
		Name:  "yank",
		Usage: "withdraw a release: agents never install it, and channels go back to the newest older release",
		Flags: withS3Write(withKeys(true, onlineRoles, repoFlag(), keysFlag(),
			&cli.StringFlag{Name: "component", Usage: "component `NAME`", EnvVars: []string{"BCPUBLISH_COMPONENT"}},
			&cli.StringFlag{Name: "platform", Usage: "`OS-ARCH`", EnvVars: []string{"BCPUBLISH_PLATFORM"}},
			&cli.StringFlag{Name: "version", Usage: "the `VERSION` to withdraw", EnvVars: []string{"BCPUBLISH_VERSION"}},
			&cli.StringFlag{Name: "reason", Usage: "why, a `TEXT` shown to the people at the PCs that have it", EnvVars: []string{"BCPUBLISH_REASON"}},
		)...),
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runReleaseYank(c.Context, globals(c), releaseYankOptions{Store: storeOpts(c, "repo"), Keys: keyOpts(c),
				Component: c.String("component"), Platform: c.String("platform"), Version: c.String("version"), Reason: c.String("reason"),
				Args: c.Args().Slice()})
		},
	}
}

// releaseYankOptions are bcpublish release yank's flags.
type releaseYankOptions struct {
	Store                                storeOptions
	Keys                                 keyOptions
	Component, Platform, Version, Reason string
	Args                                 []string
}

func runReleaseYank(ctx context.Context, g *globalOptions, o releaseYankOptions) error {
	s, keys, err := openForPublish(ctx, o.Store, o.Keys, o.Args, "component", o.Component, "platform", o.Platform, "version", o.Version, "reason", o.Reason)
	if err != nil {
		return err
	}
	var res *publisher.YankResult
	err = o.Keys.retrying(ctx, func() (err error) {
		res, err = publisher.Yank(ctx, s, keys, o.Component, o.Platform, o.Version, o.Reason, timeNow())
		return err
	})
	if err != nil {
		return err
	}
	var moved []string
	for ch, to := range res.Moved {
		if to == "" {
			to = "nothing (no older release)"
		}
		moved = append(moved, ch+" -> "+to)
	}
	fmt.Fprintf(g.Stdout, "yanked %s; channels: %s\n", res.Release, strings.Join(moved, ", "))
	return nil
}
