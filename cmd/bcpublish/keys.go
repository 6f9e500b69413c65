package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
)

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "manage TUF role keys",
		Subcommands: []*cli.Command{{
			Name:  "generate",
			Usage: "make root, targets, snapshot and timestamp keys (PKCS#8 PEM, 0600)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "out", Usage: "write keys to `DIR` (created 0700)", EnvVars: []string{"BCPUBLISH_OUT"}},
				&cli.StringFlag{Name: "type", Value: "ed25519", Usage: "key type: ed25519 or ecdsa-p256", EnvVars: []string{"BCPUBLISH_KEY_TYPE"}},
			},
			Action: func(c *cli.Context) error {
				if err := need(c, "out"); err != nil {
					return err
				}
				if t := c.String("type"); t != "ed25519" && t != "ecdsa-p256" {
					return usageErr("--type %q: want ed25519 or ecdsa-p256", t)
				}
				if _, err := publisher.GenerateKeys(c.String("out"), c.String("type")); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "generated %s role keys root, targets, snapshot, timestamp in %s\n", c.String("type"), c.String("out"))
				return nil
			},
		}},
	}
}
