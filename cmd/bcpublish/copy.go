package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
)

func copyCommand() *cli.Command {
	return &cli.Command{
		Name:  "copy",
		Usage: "copy a whole repository (directory <-> s3://) in the safe order: targets, metadata, timestamp.json last",
		Flags: withS3Write(
			&cli.StringFlag{Name: "from", Usage: "source `REPO`", EnvVars: []string{"BCPUBLISH_FROM"}},
			&cli.StringFlag{Name: "to", Usage: "destination `REPO`", EnvVars: []string{"BCPUBLISH_TO"}},
		),
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runCopy(c.Context, globals(c), copyOptions{From: storeOpts(c, "from"), To: storeOpts(c, "to"), Args: c.Args().Slice()})
		},
	}
}

// copyOptions are bcpublish copy's flags: both repositories take the same
// S3 options.
type copyOptions struct {
	From, To storeOptions
	Args     []string
}

func runCopy(ctx context.Context, g *globalOptions, o copyOptions) error {
	if err := need(o.Args, "from", o.From.Location, "to", o.To.Location); err != nil {
		return err
	}
	from, err := o.From.open(ctx)
	if err != nil {
		return err
	}
	to, err := o.To.open(ctx)
	if err != nil {
		return err
	}
	res, err := publisher.Copy(ctx, from, to)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "copied %s to %s: %d objects copied, %d already there; timestamp v%d; the copy verifies\n",
		o.From.Location, o.To.Location, res.Copied, res.Skipped, res.Timestamp)
	return nil
}
