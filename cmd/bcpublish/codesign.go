package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
)

var timeNow = time.Now

func codesignCommand() *cli.Command {
	return &cli.Command{
		Name:         "codesign",
		Usage:        "make and check detached CMS code signatures (.p7s)",
		OnUsageError: cliutil.OnUsageError,
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
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runCodesignSign(c.Context, globals(c), codesignSignOptions{Cert: c.String("cert"), Key: c.String("key"),
						File: c.String("file"), Out: c.String("out"), Args: c.Args().Slice()})
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
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runCodesignVerify(c.Context, globals(c), codesignVerifyOptions{Trust: c.String("trust"), File: c.String("file"),
						Signature: c.String("signature"), Explain: c.Bool("explain"), Args: c.Args().Slice()})
				},
			},
		},
	}
}

// codesignSignOptions are bcpublish codesign sign's flags.
type codesignSignOptions struct {
	Cert, Key, File, Out string
	Args                 []string
}

func runCodesignSign(_ context.Context, g *globalOptions, o codesignSignOptions) error {
	if err := need(o.Args, "cert", o.Cert, "key", o.Key, "file", o.File); err != nil {
		return err
	}
	out, err := publisher.SignFile(o.Cert, o.Key, o.File, o.Out)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "signed %s -> %s\n", o.File, out)
	return nil
}

// codesignVerifyOptions are bcpublish codesign verify's flags.
type codesignVerifyOptions struct {
	Trust, File, Signature string
	Explain                bool
	Args                   []string
}

func runCodesignVerify(_ context.Context, g *globalOptions, o codesignVerifyOptions) error {
	if err := need(o.Args, "trust", o.Trust, "file", o.File); err != nil {
		return err
	}
	res, err := publisher.VerifyFile(o.Trust, o.File, o.Signature)
	if err != nil {
		return err
	}
	if o.Explain {
		fmt.Fprint(g.Stdout, res.Explain())
	}
	fmt.Fprintf(g.Stdout, "verified %s: signed by %s, pinned publisher %s\n", o.File, res.Chain[0].Subject, res.Publisher)
	return nil
}
