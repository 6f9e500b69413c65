package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create a new TUF repository (root, targets, snapshot, timestamp, device policy)",
		Flags: withS3Write(withKeys(false, repo.TopLevelRoles, repoFlag(), keysFlag(),
			&cli.IntFlag{Name: "bins", Usage: "delegate targets to `N` hashed bins (a power of two; about the square root of the targets you expect)", DefaultText: "none", EnvVars: []string{"BCPUBLISH_BINS"}},
		)...),
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runInit(c.Context, globals(c), initOptions{Store: storeOpts(c, "repo"), Keys: keyOpts(c), Bins: c.Int("bins"), Args: c.Args().Slice()})
		},
	}
}

// initOptions are bcpublish init's flags.
type initOptions struct {
	Store storeOptions
	Keys  keyOptions
	Bins  int
	Args  []string
}

func runInit(ctx context.Context, g *globalOptions, o initOptions) error {
	s, keys, err := openWithKeys(ctx, o.Store, o.Keys, repo.TopLevelRoles, o.Args)
	if err != nil {
		return err
	}
	r, err := publisher.InitBins(ctx, s, keys, time.Now(), o.Bins)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "initialized repository %s (root v%d expires %s; trusted root: %s/metadata/1.root.json)\n",
		o.Store.Location, r.Root.Signed.Version, r.Root.Signed.Expires.Format(time.RFC3339), o.Store.Location)
	return nil
}
