package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
)

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:         "keys",
		Usage:        "manage TUF role keys",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{{
			Name:  "generate",
			Usage: "make root, targets, snapshot and timestamp keys (PKCS#8 PEM, 0600)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "out", Usage: "write keys to `DIR` (created 0700)", EnvVars: []string{"BCPUBLISH_OUT"}},
				&cli.StringFlag{Name: "type", Value: "ed25519", Usage: "key `TYPE`: ed25519 or ecdsa-p256", EnvVars: []string{"BCPUBLISH_KEY_TYPE"}},
			},
			OnUsageError: cliutil.OnUsageError,
			Action: func(c *cli.Context) error {
				return runKeysGenerate(c.Context, globals(c), keysGenerateOptions{Out: c.String("out"), Type: c.String("type"), Args: c.Args().Slice()})
			},
		}},
	}
}

// keysGenerateOptions are bcpublish keys generate's flags.
type keysGenerateOptions struct {
	Out, Type string
	Args      []string
}

func runKeysGenerate(_ context.Context, g *globalOptions, o keysGenerateOptions) error {
	if err := need(o.Args, "out", o.Out); err != nil {
		return err
	}
	if o.Type != "ed25519" && o.Type != "ecdsa-p256" {
		return cliutil.Usagef("type", "--type %q: want ed25519 or ecdsa-p256", o.Type)
	}
	if _, err := publisher.GenerateKeys(o.Out, o.Type); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "generated %s role keys root, targets, snapshot, timestamp in %s\n", o.Type, o.Out)
	return nil
}
