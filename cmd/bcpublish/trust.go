package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/signer"
)

func trustCommand() *cli.Command {
	return &cli.Command{
		Name:         "trust",
		Usage:        "publish code-signing revocation lists to agents",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{{
			Name:  "add-crl",
			Usage: "publish a CRL as the TUF target trust/crl/<name>.crl (replacing an older one of that name)",
			Flags: withS3Write(withKeys(true, onlineRoles, repoFlag(), keysFlag(),
				&cli.StringFlag{Name: "crl", Usage: "the CRL `FILE` (DER or PEM) from the code-signing CA", EnvVars: []string{"BCPUBLISH_CRL"}},
				&cli.StringFlag{Name: "name", Usage: "target `NAME` (default: the file name without extension)", EnvVars: []string{"BCPUBLISH_CRL_NAME"}},
			)...),
			OnUsageError: cliutil.OnUsageError,
			Action: func(c *cli.Context) error {
				return runTrustAddCRL(c.Context, globals(c), addCRLOptions{Store: storeOpts(c, "repo"), Keys: keyOpts(c),
					CRL: c.String("crl"), Name: c.String("name"), Args: c.Args().Slice()})
			},
		}},
	}
}

// addCRLOptions are bcpublish trust add-crl's flags.
type addCRLOptions struct {
	Store     storeOptions
	Keys      keyOptions
	CRL, Name string
	Args      []string
}

func runTrustAddCRL(ctx context.Context, g *globalOptions, o addCRLOptions) error {
	s, keys, err := openForPublish(ctx, o.Store, o.Keys, o.Args, "crl", o.CRL)
	if err != nil {
		return err
	}
	var path string
	var crl *signer.CRL
	err = o.Keys.retrying(ctx, func() (err error) {
		path, crl, err = publisher.AddCRL(ctx, s, keys, o.CRL, o.Name, time.Now())
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "published %s: %d revoked certificates, issued by %s, next update %s\n",
		path, len(crl.List.RevokedCertificateEntries), crl.List.Issuer, crl.List.NextUpdate.UTC().Format(time.RFC3339))
	return nil
}
