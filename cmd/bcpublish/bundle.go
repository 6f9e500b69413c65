package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

func bundleCommand() *cli.Command {
	return &cli.Command{
		Name:         "bundle",
		Usage:        "offline bundles: one signed file to carry releases to PCs without the network",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{{
			Name:  "create",
			Usage: "write a bundle of chosen releases with the metadata and signatures agents need to verify them offline (bcagent import)",
			Flags: withS3(withKeys(false, []string{repo.RoleTargets},
				repoFlag(), keysFlag(),
				&cli.StringSliceFlag{Name: "component", Usage: "component `NAME` to carry (repeatable)", EnvVars: []string{"BCPUBLISH_COMPONENT"}},
				&cli.BoolFlag{Name: "all-components", Usage: "carry every component the repository publishes", EnvVars: []string{"BCPUBLISH_ALL_COMPONENTS"}},
				&cli.StringFlag{Name: "platform", Usage: "only this `OS-ARCH` (default: every platform the components are published for)", EnvVars: []string{"BCPUBLISH_PLATFORM"}},
				&cli.StringFlag{Name: "version", Usage: "carry this `VERSION` (not with --channel)", EnvVars: []string{"BCPUBLISH_VERSION"}},
				&cli.StringFlag{Name: "channel", Usage: "carry the release channel `NAME` points at, and the pointer (default: stable, unless --version)", EnvVars: []string{"BCPUBLISH_CHANNEL"}},
				&cli.BoolFlag{Name: "patches", Usage: "also carry the releases' delta patches", EnvVars: []string{"BCPUBLISH_PATCHES"}},
				&cli.StringFlag{Name: "valid-for", Value: "30d", Usage: "how long agents may import the bundle, `DURATION` (1h to 90d; 30d, 12h)", EnvVars: []string{"BCPUBLISH_VALID_FOR"}},
				&cli.StringFlag{Name: "out", Usage: "the bundle `FILE` to write (written as FILE.tmp, then renamed)", EnvVars: []string{"BCPUBLISH_OUT"}},
			)...),
			OnUsageError: cliutil.OnUsageError,
			Action: func(c *cli.Context) error {
				return runBundleCreate(c.Context, globals(c), bundleCreateOptions{
					Store: storeOpts(c, "repo"), Keys: keyOpts(c),
					Components: c.StringSlice("component"), AllComponents: c.Bool("all-components"),
					Platform: c.String("platform"), Version: c.String("version"), Channel: c.String("channel"),
					Patches: c.Bool("patches"), ValidFor: c.String("valid-for"), Out: c.String("out"),
					Progress: stderrIsTerminal(c), Args: c.Args().Slice(),
				})
			},
		}},
	}
}

// bundleCreateOptions are bcpublish bundle create's flags.
type bundleCreateOptions struct {
	Store         storeOptions
	Keys          keyOptions
	Components    []string
	AllComponents bool
	Platform      string
	Version       string
	Channel       string
	Patches       bool
	ValidFor      string
	Out           string
	Progress      bool
	Args          []string
}

func stderrIsTerminal(c *cli.Context) bool {
	f, ok := c.App.ErrWriter.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// parseValidFor reads a duration in days ("30d") or Go's notation ("12h").
func parseValidFor(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("--valid-for %q: want a duration such as 30d or 12h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("--valid-for %q: want a duration such as 30d or 12h", s)
	}
	return v, nil
}

func runBundleCreate(ctx context.Context, g *globalOptions, o bundleCreateOptions) error {
	if err := need(o.Args, "repo", o.Store.Location, "keys", o.Keys.given(), "out", o.Out); err != nil {
		return err
	}
	if len(o.Components) == 0 && !o.AllComponents {
		return cliutil.Usagef("component", "--component NAME is required (or --all-components)")
	}
	validFor, err := parseValidFor(o.ValidFor)
	if err != nil {
		return cliutil.Usagef("valid-for", "%v", err)
	}
	if validFor < time.Hour || validFor > repo.MaxBundleValidity {
		return cliutil.Usagef("valid-for", "--valid-for %s: want 1h to 90d (the offline window is bounded: docs/threat-model.md)", o.ValidFor)
	}
	bo := publisher.BundleOptions{Components: o.Components, AllComponents: o.AllComponents, Platform: o.Platform,
		Version: o.Version, Channel: o.Channel, Patches: o.Patches, ValidFor: validFor, Out: o.Out}
	if o.Version != "" && o.Channel != "" {
		return cliutil.Usagef("version", "--version and --channel do not go together: a bundle carries one version, or the release a channel names")
	}
	s, err := o.Store.open(ctx)
	if err != nil {
		return err
	}
	keys, err := o.Keys.load(ctx, repo.RoleTargets)
	if err != nil {
		return err
	}
	var bar *progressbar.ProgressBar
	if o.Progress {
		bo.Progress = func(done, total int64) {
			if bar == nil {
				bar = progressbar.DefaultBytes(total, "writing "+o.Out)
			}
			bar.Set64(done)
		}
	}
	res, err := publisher.CreateBundle(ctx, s, keys, bo)
	if bar != nil {
		bar.Finish()
		fmt.Fprintln(g.Stderr)
	}
	if err != nil {
		return o.Keys.explain(err)
	}
	for _, r := range res.Releases {
		how := "version " + r.Version
		if r.Channel != "" {
			how = "channel " + r.Channel + ": " + r.Version
		}
		fmt.Fprintf(g.Stdout, "  %s %s (%s)\n", r.Component, r.Platform, how)
	}
	clamp := ""
	if res.ClampedToRoot {
		clamp = " (cut short to the root's expiry)"
	}
	fmt.Fprintf(g.Stdout, "wrote %s: %d files, %s, timestamp v%d; importable until %s%s\n",
		res.File, res.Entries, humanBytes(res.Size), res.Timestamp, res.Expires.Format(time.RFC3339), clamp)
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 3 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", f, []string{"KiB", "MiB", "GiB", "TiB"}[i])
}
