package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create a new TUF repository (root, targets, snapshot, timestamp, device policy)",
		Flags: []cli.Flag{repoFlag(), keysFlag(),
			&cli.IntFlag{Name: "bins", Usage: "delegate targets to `N` hashed bins (a power of two; about the square root of the targets you expect)", EnvVars: []string{"BCPUBLISH_BINS"}},
		},
		Action: func(c *cli.Context) error {
			s, keys, err := openWithKeys(c, repo.TopLevelRoles)
			if err != nil {
				return err
			}
			r, err := publisher.InitBins(c.Context, s, keys, time.Now(), c.Int("bins"))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "initialized repository %s (root v%d expires %s; trusted root: %s/metadata/1.root.json)\n",
				c.String("repo"), r.Root.Signed.Version, r.Root.Signed.Expires.Format(time.RFC3339), c.String("repo"))
			return nil
		},
	}
}
