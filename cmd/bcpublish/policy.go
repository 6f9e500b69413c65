package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

func policyCommand() *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "manage the signed device policy (PHI device classes)",
		Subcommands: []*cli.Command{{
			Name:  "set",
			Usage: `publish a code-signed policy/devices.json: {"phi_device_classes": ["Navios EX", ...], "version": N}`,
			Flags: append([]cli.Flag{repoFlag(), keysFlag(), trustFlag(),
				&cli.StringFlag{Name: "file", Usage: "the policy `FILE` (devices.json); its version must be above the published one", EnvVars: []string{"BCPUBLISH_FILE"}},
				&cli.StringFlag{Name: "signature", Usage: "the policy's detached code signature `FILE.p7s` (default: FILE.p7s)", EnvVars: []string{"BCPUBLISH_SIGNATURE"}},
			}, codesignFlags()...),
			Action: func(c *cli.Context) error {
				s, keys, err := openForPublish(c, "file", "trust")
				if err != nil {
					return err
				}
				trust, err := signer.LoadTrust(c.String("trust"))
				if err != nil {
					return usageErr("--trust: %v", err)
				}
				sign, err := codeSigner(c)
				if err != nil {
					return err
				}
				var p *repo.DevicePolicy
				var changed bool
				err = retrying(c, func() (err error) {
					p, changed, err = publisher.SetPolicy(c.Context, s, keys, trust, publisher.PolicyOptions{
						File: c.String("file"), Signature: c.String("signature"), Sign: sign, Now: time.Now()})
					return err
				})
				if err != nil {
					return err
				}
				if !changed {
					fmt.Fprintln(c.App.Writer, "policy/devices.json already has this content; nothing changed")
					return nil
				}
				fmt.Fprintf(c.App.Writer, "published code-signed policy/devices.json version %d: %d PHI device classes (%s)\n", p.Version, len(p.PHIDeviceClasses), strings.Join(p.PHIDeviceClasses, ", "))
				return nil
			},
		}},
	}
}
