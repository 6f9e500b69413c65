package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
)

var timeNow = time.Now

func codesignCommand() *cli.Command {
	return &cli.Command{
		Name:  "codesign",
		Usage: "make and check detached CMS code signatures (.p7s)",
		Subcommands: []*cli.Command{
			{
				Name:  "sign",
				Usage: "sign a file with a development or test chain (production signs with signtool or openssl)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "cert", Usage: "certificate chain `CHAIN.pem`, leaf first", EnvVars: []string{"BCPUBLISH_CERT"}},
					&cli.StringFlag{Name: "key", Usage: "the leaf's private key `KEY.pem`", EnvVars: []string{"BCPUBLISH_KEY"}},
					&cli.StringFlag{Name: "file", Usage: "`FILE` to sign", EnvVars: []string{"BCPUBLISH_FILE"}},
					&cli.StringFlag{Name: "out", Usage: "signature `FILE.p7s` (default: FILE.p7s)", EnvVars: []string{"BCPUBLISH_OUT"}},
				},
				Action: func(c *cli.Context) error {
					if err := need(c, "cert", "key", "file"); err != nil {
						return err
					}
					out, err := publisher.SignFile(c.String("cert"), c.String("key"), c.String("file"), c.String("out"))
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "signed %s -> %s\n", c.String("file"), out)
					return nil
				},
			},
			{
				Name:  "verify",
				Usage: "verify a file's code signature against a trust directory",
				Flags: []cli.Flag{
					trustFlag(),
					&cli.StringFlag{Name: "file", Usage: "signed `FILE`", EnvVars: []string{"BCPUBLISH_FILE"}},
					&cli.StringFlag{Name: "signature", Usage: "`FILE.p7s` (default: FILE.p7s)", EnvVars: []string{"BCPUBLISH_SIGNATURE"}},
					&cli.BoolFlag{Name: "explain", Usage: "print the chain, the time it was checked at and the pinned identity that matched", EnvVars: []string{"BCPUBLISH_EXPLAIN"}},
				},
				Action: func(c *cli.Context) error {
					if err := need(c, "trust", "file"); err != nil {
						return err
					}
					res, err := publisher.VerifyFile(c.String("trust"), c.String("file"), c.String("signature"))
					if err != nil {
						return err
					}
					if c.Bool("explain") {
						fmt.Fprint(c.App.Writer, res.Explain())
					}
					fmt.Fprintf(c.App.Writer, "verified %s: signed by %s, pinned publisher %s\n", c.String("file"), res.Chain[0].Subject, res.Publisher)
					return nil
				},
			},
		},
	}
}
