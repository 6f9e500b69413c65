package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

func releaseCommand() *cli.Command {
	return &cli.Command{
		Name:        "release",
		Usage:       "add and list releases",
		Subcommands: []*cli.Command{releaseAddCommand(), releaseGateCommand(), releaseListCommand(), releasePromoteCommand(), releaseYankCommand()},
	}
}

func releaseAddCommand() *cli.Command {
	return &cli.Command{
		Name:  "add",
		Usage: "publish a code-signed artifact and point channels at it",
		Flags: []cli.Flag{
			repoFlag(), keysFlag(), trustFlag(),
			&cli.StringFlag{Name: "component", Usage: "component `NAME` (lowercase, digits, -)", EnvVars: []string{"BCPUBLISH_COMPONENT"}},
			&cli.StringFlag{Name: "version", Usage: "semantic `VERSION` such as 1.1.0", EnvVars: []string{"BCPUBLISH_VERSION"}},
			&cli.StringFlag{Name: "platform", Usage: "`OS-ARCH` such as windows-amd64", EnvVars: []string{"BCPUBLISH_PLATFORM"}},
			&cli.StringFlag{Name: "file", Usage: "the `ARTIFACT` to publish", EnvVars: []string{"BCPUBLISH_FILE"}},
			&cli.StringFlag{Name: "signature", Usage: "detached CMS signature `FILE.p7s` (default: ARTIFACT.p7s)", EnvVars: []string{"BCPUBLISH_SIGNATURE"}},
			&cli.StringSliceFlag{Name: "channel", Usage: "channel `NAME` to point at this release (repeatable; default stable)", EnvVars: []string{"BCPUBLISH_CHANNEL"}},
			&cli.StringSliceFlag{Name: "delta-from", Usage: "also publish a bsdiff patch from earlier `VERSION` (repeatable; needs bsdiff)", EnvVars: []string{"BCPUBLISH_DELTA_FROM"}},
			&cli.IntFlag{Name: "percent", Usage: "staged rollout: only `P` percent of devices take it (default: all)", EnvVars: []string{"BCPUBLISH_PERCENT"}},
			&cli.StringFlag{Name: "install", Usage: "install kind: archive, file, installer or self (default: archive for .tar.gz/.zip, else file)", EnvVars: []string{"BCPUBLISH_INSTALL"}},
			&cli.StringFlag{Name: "installer", Usage: "installer `COMMAND` for --install installer; {file} is the installer (default for .msi: msiexec /i {file} /qn /norestart)", EnvVars: []string{"BCPUBLISH_INSTALLER"}},
			&cli.StringSliceFlag{Name: "feature", Usage: "feature `ID[:required|phi-devices|none]` the release turns on (repeatable; default consent: required)", EnvVars: []string{"BCPUBLISH_FEATURE"}},
			&cli.StringSliceFlag{Name: "feature-text", Usage: "`ID=FILE`: the feature's title (first line) and full description, shown to the person who authorizes it", EnvVars: []string{"BCPUBLISH_FEATURE_TEXT"}},
			&cli.StringFlag{Name: "health-check", Usage: "command the agent runs after installing, e.g. \"bin/nc --version\"", EnvVars: []string{"BCPUBLISH_HEALTH_CHECK"}},
			&cli.StringFlag{Name: "gate", Usage: "code-signed gate manifest `GATE.json` from bcpublish release gate (features are read from it)", EnvVars: []string{"BCPUBLISH_GATE"}},
			&cli.StringFlag{Name: "gate-signature", Usage: "the gate manifest's detached code signature `FILE.p7s` (default: GATE.json.p7s)", EnvVars: []string{"BCPUBLISH_GATE_SIGNATURE"}},
			codesignFlags()[0], codesignFlags()[1],
		},
		Action: func(c *cli.Context) error {
			if err := need(c, "repo", "keys", "trust", "component", "version", "platform", "file"); err != nil {
				return err
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			trust, err := signer.LoadTrust(c.String("trust"))
			if err != nil {
				return usageErr("--trust: %v", err)
			}
			keys, err := loadKeys(c, repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp)
			if err != nil {
				return err
			}
			features, err := publisher.ParseFeatures(c.StringSlice("feature"), c.StringSlice("feature-text"))
			if err != nil {
				return err
			}
			sign, err := codeSigner(c)
			if err != nil {
				return err
			}
			var gate, gateSig []byte
			if g := c.String("gate"); g != "" {
				if gate, gateSig, err = publisher.ReadGate(g, c.String("gate-signature")); err != nil {
					return err
				}
			}
			var res *publisher.ReleaseResult
			err = retrying(c, func() (err error) {
				res, err = publisher.AddRelease(c.Context, s, keys, trust, publisher.ReleaseOptions{
					Features:      features,
					Component:     c.String("component"),
					Version:       c.String("version"),
					Platform:      c.String("platform"),
					File:          c.String("file"),
					Signature:     c.String("signature"),
					Channels:      c.StringSlice("channel"),
					Install:       c.String("install"),
					HealthCheck:   strings.Fields(c.String("health-check")),
					Installer:     strings.Fields(c.String("installer")),
					Percent:       c.Int("percent"),
					DeltaFrom:     c.StringSlice("delta-from"),
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
				fmt.Fprintf(c.App.Writer, "%s is already published with this content; nothing changed\n", res.Path)
				return nil
			}
			fmt.Fprintf(c.App.Writer, "published %s (%d bytes, sha256 %.12s…, signed by %s) on channel %s; targets v%d, timestamp v%d\n",
				res.Path, res.Length, res.SHA256, res.Verified.Publisher, strings.Join(res.Channels, ","), res.TargetsVersion, res.TimestampVersion)
			for _, w := range res.Warnings {
				fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", w)
			}
			return nil
		},
	}
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
		Action: func(c *cli.Context) error {
			if err := need(c, "component", "version", "platform", "file", "out"); err != nil {
				return err
			}
			features, err := publisher.ParseFeatures(c.StringSlice("feature"), c.StringSlice("feature-text"))
			if err != nil {
				return err
			}
			m, err := publisher.GateManifestFor(publisher.ReleaseOptions{Component: c.String("component"), Version: c.String("version"),
				Platform: c.String("platform"), File: c.String("file"), Features: features})
			if err != nil {
				return err
			}
			if err := publisher.WriteFile(c.String("out"), m); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s; sign it with the code-signing key (bcpublish codesign sign --file %s, signtool /p7 or openssl cms), then bcpublish release add … --gate %s\n",
				c.String("out"), c.String("out"), c.String("out"))
			return nil
		},
	}
}

func releaseListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list published releases and their channels",
		Flags: []cli.Flag{repoFlag(), jsonFlag()},
		Action: func(c *cli.Context) error {
			if err := need(c, "repo"); err != nil {
				return err
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			list, err := publisher.ListReleases(c.Context, s)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if list == nil {
					list = []publisher.ReleaseInfo{}
				}
				return enc.Encode(list)
			}
			if len(list) == 0 {
				fmt.Fprintln(c.App.Writer, "no releases published yet")
				return nil
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "COMPONENT\tPLATFORM\tVERSION\tCHANNELS\tRELEASED\tSIZE\tPATH")
			for _, r := range list {
				ch := strings.Join(r.Channels, ",")
				if ch == "" {
					ch = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Component, r.Platform, r.Version, ch, r.Released, r.Length, r.Path)
			}
			return tw.Flush()
		},
	}
}

func releasePromoteCommand() *cli.Command {
	return &cli.Command{
		Name:  "promote",
		Usage: "point a channel at the release another names (or change a channel's rollout share)",
		Flags: []cli.Flag{repoFlag(), keysFlag(),
			&cli.StringFlag{Name: "component", Usage: "component `NAME`", EnvVars: []string{"BCPUBLISH_COMPONENT"}},
			&cli.StringFlag{Name: "platform", Usage: "`OS-ARCH`", EnvVars: []string{"BCPUBLISH_PLATFORM"}},
			&cli.StringFlag{Name: "from", Usage: "source `CHANNEL`", EnvVars: []string{"BCPUBLISH_FROM"}},
			&cli.StringFlag{Name: "to", Usage: "target `CHANNEL`", EnvVars: []string{"BCPUBLISH_TO"}},
			&cli.IntFlag{Name: "percent", Value: 100, Usage: "share of devices, `P` percent (staged rollout)", EnvVars: []string{"BCPUBLISH_PERCENT"}},
		},
		Action: func(c *cli.Context) error {
			s, keys, err := openForPublish(c, "component", "platform", "from", "to")
			if err != nil {
				return err
			}
			var rel string
			err = retrying(c, func() (err error) {
				rel, err = publisher.Promote(c.Context, s, keys, c.String("component"), c.String("platform"), c.String("from"), c.String("to"), c.Int("percent"), timeNow())
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "channel %s now names %s for %d%% of devices\n", c.String("to"), rel, c.Int("percent"))
			return nil
		},
	}
}

func releaseYankCommand() *cli.Command {
	return &cli.Command{
		Name:  "yank",
		Usage: "withdraw a release: agents never install it, and channels go back to the newest older release",
		Flags: []cli.Flag{repoFlag(), keysFlag(),
			&cli.StringFlag{Name: "component", Usage: "component `NAME`", EnvVars: []string{"BCPUBLISH_COMPONENT"}},
			&cli.StringFlag{Name: "platform", Usage: "`OS-ARCH`", EnvVars: []string{"BCPUBLISH_PLATFORM"}},
			&cli.StringFlag{Name: "version", Usage: "the `VERSION` to withdraw", EnvVars: []string{"BCPUBLISH_VERSION"}},
			&cli.StringFlag{Name: "reason", Usage: "why, shown to the people at the PCs that have it", EnvVars: []string{"BCPUBLISH_REASON"}},
		},
		Action: func(c *cli.Context) error {
			s, keys, err := openForPublish(c, "component", "platform", "version", "reason")
			if err != nil {
				return err
			}
			var res *publisher.YankResult
			err = retrying(c, func() (err error) {
				res, err = publisher.Yank(c.Context, s, keys, c.String("component"), c.String("platform"), c.String("version"), c.String("reason"), timeNow())
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
			fmt.Fprintf(c.App.Writer, "yanked %s; channels: %s\n", res.Release, strings.Join(moved, ", "))
			return nil
		},
	}
}
