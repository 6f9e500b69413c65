package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/signer"
)

func trustCommand() *cli.Command {
	return &cli.Command{
		Name:  "trust",
		Usage: "publish code-signing revocation lists to agents",
		Subcommands: []*cli.Command{{
			Name:  "add-crl",
			Usage: "publish a CRL as the TUF target trust/crl/<name>.crl (replacing an older one of that name)",
			Flags: []cli.Flag{repoFlag(), keysFlag(),
				&cli.StringFlag{Name: "crl", Usage: "the CRL `FILE` (DER or PEM) from the code-signing CA", EnvVars: []string{"BCPUBLISH_CRL"}},
				&cli.StringFlag{Name: "name", Usage: "target `NAME` (default: the file name without extension)", EnvVars: []string{"BCPUBLISH_CRL_NAME"}},
			},
			Action: func(c *cli.Context) error {
				s, keys, err := openForPublish(c, "crl")
				if err != nil {
					return err
				}
				var path string
				var crl *signer.CRL
				err = retrying(c, func() (err error) {
					path, crl, err = publisher.AddCRL(c.Context, s, keys, c.String("crl"), c.String("name"), time.Now())
					return err
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "published %s: %d revoked certificates, issued by %s, next update %s\n",
					path, len(crl.List.RevokedCertificateEntries), crl.List.Issuer, crl.List.NextUpdate.UTC().Format(time.RFC3339))
				return nil
			},
		}},
	}
}
