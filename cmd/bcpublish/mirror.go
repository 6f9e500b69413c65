package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/internal/regfile"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

// The range of mirror --interval (0: sync once).
const (
	minMirrorInterval = 10 * time.Second
	maxMirrorInterval = 7 * 24 * time.Hour
)

func mirrorCommand() *cli.Command {
	return &cli.Command{
		Name:  "mirror",
		Usage: "keep a verified site mirror of a repository: only what verifies with TUF from --root becomes visible, metadata last",
		Flags: withS3Write(
			&cli.StringFlag{Name: "from", Usage: "upstream repository: https://HOST/PATH (as bcpublish serve or a CDN serves it), a directory or s3://bucket/prefix (`REPO`)", EnvVars: []string{"BCPUBLISH_FROM"}},
			&cli.StringFlag{Name: "to", Usage: "the mirror: a directory or s3://bucket/prefix (`REPO`)", EnvVars: []string{"BCPUBLISH_TO"}},
			&cli.StringFlag{Name: "root", Usage: "the repository's trusted root metadata `FILE` (metadata/1.root.json from the publisher, as for bcagent init --root)", EnvVars: []string{"BCPUBLISH_ROOT"}},
			&cli.StringSliceFlag{Name: "component", Usage: "copy only the target files of component `NAME` (repeatable or comma-separated; metadata is always copied whole)", EnvVars: []string{"BCPUBLISH_COMPONENT"}},
			&cli.StringFlag{Name: "interval", Usage: "sync again every `DURATION` (10s to 168h) until interrupted (default: sync once)", EnvVars: []string{"BCPUBLISH_INTERVAL"}},
			&cli.StringFlag{Name: "work", Usage: "`DIR` for partial downloads (default: <to>/.bcmirror, or a cache directory for s3://)", EnvVars: []string{"BCPUBLISH_WORK"}},
			&cli.Int64Flag{Name: "min-rate", Usage: fmt.Sprintf("an https --from: fail a download that brings fewer than `BYTES` per second over --min-rate-window (a dripping server), %d to %d", minMirrorRate, maxMirrorRate), DefaultText: "1024, as agents", EnvVars: []string{"BCPUBLISH_MIN_RATE"}},
			&cli.StringFlag{Name: "min-rate-window", Usage: "an https --from: judge --min-rate over each `DURATION` of waiting for the server, 10s to 10m (default: 30s, as agents)", EnvVars: []string{"BCPUBLISH_MIN_RATE_WINDOW"}},
			&cli.StringSliceFlag{Name: "allow-host", Usage: "an https --from: another `HOST` or HOST:PORT a redirect may lead to, e.g. a CDN (repeatable)", EnvVars: []string{"BCPUBLISH_ALLOW_HOST"}},
		),
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runMirror(c.Context, globals(c), mirrorOptions{
				From: storeOpts(c, "from"), To: storeOpts(c, "to"), Root: c.String("root"),
				Components: c.StringSlice("component"), Interval: c.String("interval"), Work: c.String("work"),
				MinRate: c.Int64("min-rate"), MinRateSet: c.IsSet("min-rate"), MinRateWindow: c.String("min-rate-window"),
				AllowHosts: c.StringSlice("allow-host"), Args: c.Args().Slice(),
			})
		},
	}
}

// mirrorOptions are bcpublish mirror's flags.
type mirrorOptions struct {
	From, To   storeOptions
	Root       string
	Components []string
	Interval   string
	Work       string
	// For an https --from: the agents' minimum-rate rule and the other
	// hosts a redirect may lead to.
	MinRate       int64
	MinRateSet    bool
	MinRateWindow string
	AllowHosts    []string
	Args          []string
}

// The --min-rate and --min-rate-window ranges, the agents' own
// (client.MinRateRange, client.MinRateWindowRange).
const (
	minMirrorRate       = 128
	maxMirrorRate       = 1 << 20
	minMirrorRateWindow = 10 * time.Second
	maxMirrorRateWindow = 10 * time.Minute
)

// httpSourceOptions applies the options that concern an https --from to
// src, or refuses them for another kind of --from.
func (o mirrorOptions) httpSourceOptions(src *publisher.HTTPSource) error {
	isURL := src != nil
	if !isURL && (o.MinRateSet || o.MinRateWindow != "" || len(o.AllowHosts) > 0) {
		return cliutil.Usagef("from", "--min-rate, --min-rate-window and --allow-host apply to an https --from, not to %s", o.From.Location)
	}
	if o.MinRateSet {
		if o.MinRate < minMirrorRate || o.MinRate > maxMirrorRate {
			return cliutil.Usagef("min-rate", "--min-rate %d: want %d to %d bytes per second", o.MinRate, minMirrorRate, maxMirrorRate)
		}
		if isURL {
			src.MinRate = o.MinRate
		}
	}
	if o.MinRateWindow != "" {
		d, err := time.ParseDuration(o.MinRateWindow)
		if err != nil || d < minMirrorRateWindow || d > maxMirrorRateWindow {
			return cliutil.Usagef("min-rate-window", "--min-rate-window %q: want a duration from 10s to 10m, such as 30s", o.MinRateWindow)
		}
		if isURL {
			src.MinRateWindow = d
		}
	}
	for _, h := range o.AllowHosts {
		if h == "" || strings.ContainsAny(h, "/ @?#") || strings.Contains(h, "://") {
			return cliutil.Usagef("allow-host", "--allow-host %q: want a host name or host:port, such as cdn.example.com", h)
		}
		if isURL {
			src.AllowHosts = append(src.AllowHosts, strings.ToLower(h))
		}
	}
	return nil
}

// runMirror syncs once, or every --interval until ctx is done: a failed
// sync is reported and the mirror keeps serving its previous state.
func runMirror(ctx context.Context, g *globalOptions, o mirrorOptions) error {
	if err := need(o.Args, "from", o.From.Location, "to", o.To.Location, "root", o.Root); err != nil {
		return err
	}
	var interval time.Duration
	if o.Interval != "" {
		d, err := time.ParseDuration(o.Interval)
		if err != nil || d < minMirrorInterval || d > maxMirrorInterval {
			return cliutil.Usagef("interval", "--interval %q: want a duration from %s to %s, such as 5m", o.Interval, minMirrorInterval, "168h")
		}
		interval = d
	}
	var comps []string
	for _, c := range o.Components {
		for _, part := range strings.Split(c, ",") {
			if part = strings.TrimSpace(part); part != "" {
				if err := repo.ValidateName("component", part); err != nil {
					return cliutil.Usagef("component", "--component: %v", err)
				}
				comps = append(comps, part)
			}
		}
	}
	root, err := regfile.Read(o.Root, repo.MaxRootSize)
	if err != nil {
		return cliutil.Usagef("root", "--root: %v", err)
	}
	if len(bytes.TrimSpace(root)) == 0 {
		return cliutil.Usagef("root", "--root %s: the file is empty; give the repository's root metadata (metadata/1.root.json from the publisher)", o.Root)
	}
	from, err := mirrorSource(ctx, o.From)
	if err != nil {
		return err
	}
	src, _ := from.(*publisher.HTTPSource)
	if err := o.httpSourceOptions(src); err != nil {
		return err
	}
	to, err := o.To.open(ctx)
	if err != nil {
		return err
	}
	work := o.Work
	if work == "" {
		if work, err = defaultMirrorWork(o.To.Location); err != nil {
			return err
		}
	}
	if err := checkWritable(o.To, work); err != nil {
		return err
	}
	mo := publisher.MirrorOptions{Root: root, Components: comps, WorkDir: work,
		Log: g.Log.NewLogger(g.Stderr)} // --log-format, --log-level (docs/operations.md, "Logs")
	for {
		res, err := publisher.Mirror(ctx, from, to, mo)
		switch {
		case err == nil:
			reportMirror(g, o, res)
		case interval == 0 || errors.Is(err, errs.ErrUsage):
			return err
		case ctx.Err() != nil:
			return nil
		default:
			fmt.Fprintf(g.Stderr, "bcpublish mirror: %s: sync failed (exit code %d): %v; the mirror keeps serving its previous state; next sync in %s\n",
				time.Now().UTC().Format(time.RFC3339), exitCode(err), err, interval)
		}
		if interval == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// mirrorSource opens --from: a URL, or a store.
func mirrorSource(ctx context.Context, o storeOptions) (publisher.MirrorSource, error) {
	if strings.HasPrefix(o.Location, "http://") || strings.HasPrefix(o.Location, "https://") {
		src, err := publisher.NewHTTPSource(o.Location)
		if err != nil {
			return nil, cliutil.Usagef("from", "--from %w", err)
		}
		return src, nil
	}
	if strings.Contains(o.Location, "://") && !strings.HasPrefix(o.Location, "s3://") {
		return nil, cliutil.Usagef("from", "--from %s: want https://host/path, a directory or s3://bucket/prefix", o.Location)
	}
	s, err := o.open(ctx)
	if err != nil {
		return nil, err
	}
	return publisher.StoreSource{Store: s}, nil
}

// defaultMirrorWork is <to>/.bcmirror for a directory (bcpublish serve
// serves only metadata/ and targets/), else a cache directory of this user.
func defaultMirrorWork(to string) (string, error) {
	if !strings.HasPrefix(to, "s3://") {
		return filepath.Join(to, ".bcmirror"), nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", cliutil.Usagef("work", "--to %s: no cache directory for partial downloads (%v): give --work DIR", to, err)
	}
	sum := sha256.Sum256([]byte(to))
	return filepath.Join(cache, "bcupdate", "mirror-"+hex.EncodeToString(sum[:8])), nil
}

// checkWritable fails early, before anything is downloaded, when the
// mirror directory or the work directory cannot be written.
func checkWritable(to storeOptions, work string) error {
	if !strings.HasPrefix(to.Location, "s3://") {
		if err := os.MkdirAll(to.Location, 0o755); err != nil {
			return fmt.Errorf("--to %s: cannot create the mirror directory: %w", to.Location, err)
		}
		f, err := os.CreateTemp(to.Location, ".bcmirror-probe-*")
		if err != nil {
			return fmt.Errorf("--to %s: the mirror directory is not writable: %w", to.Location, err)
		}
		f.Close()
		os.Remove(f.Name())
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("--work %s: cannot create the work directory: %w", work, err)
	}
	return nil
}

func reportMirror(g *globalOptions, o mirrorOptions, res *publisher.MirrorResult) {
	now := time.Now().UTC().Format(time.RFC3339)
	if !res.Changed && res.TargetsCopied == 0 {
		fmt.Fprintf(g.Stdout, "%s mirror %s of %s is up to date at timestamp v%d\n", now, o.To.Location, o.From.Location, res.Timestamp)
		return
	}
	was := "nothing"
	if res.Previous > 0 {
		was = fmt.Sprintf("v%d", res.Previous)
	}
	fmt.Fprintf(g.Stdout, "%s mirror %s of %s verified and now serves timestamp v%d (was %s): %d target files copied (%d bytes), %d already there, %d left out by --component; %d metadata files fetched (%d bytes)\n",
		now, o.To.Location, o.From.Location, res.Timestamp, was, res.TargetsCopied, res.TargetBytes, res.TargetsPresent, res.TargetsSkipped, res.MetadataFiles, res.MetadataBytes)
}
