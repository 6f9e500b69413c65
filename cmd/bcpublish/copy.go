package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
)

func copyCommand() *cli.Command {
	return &cli.Command{
		Name:  "copy",
		Usage: "copy a whole repository (directory <-> s3://) in the safe order: targets, metadata, timestamp.json last",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from", Usage: "source `REPO`", EnvVars: []string{"BCPUBLISH_FROM"}},
			&cli.StringFlag{Name: "to", Usage: "destination `REPO`", EnvVars: []string{"BCPUBLISH_TO"}},
		},
		Action: func(c *cli.Context) error {
			if err := need(c, "from", "to"); err != nil {
				return err
			}
			from, err := openStoreFlag(c, "from")
			if err != nil {
				return err
			}
			to, err := openStoreFlag(c, "to")
			if err != nil {
				return err
			}
			res, err := publisher.Copy(c.Context, from, to)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "copied %s to %s: %d objects copied, %d already there; timestamp v%d; the copy verifies\n",
				c.String("from"), c.String("to"), res.Copied, res.Skipped, res.Timestamp)
			return nil
		},
	}
}
