package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

func policyCommand() *cli.Command {
	return &cli.Command{
		Name:         "policy",
		Usage:        "manage the signed device policy (PHI device classes)",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{{
			Name:  "set",
			Usage: `publish a code-signed policy/devices.json: {"phi_device_classes": ["Navios EX", ...], "version": N}`,
			Flags: withS3Write(withKeys(true, onlineRoles, append([]cli.Flag{repoFlag(), keysFlag(), trustFlag(),
				&cli.StringFlag{Name: "file", Usage: "the policy `FILE` (devices.json); its version must be above the published one", EnvVars: []string{"BCPUBLISH_FILE"}},
				&cli.StringFlag{Name: "signature", Usage: "the policy's detached code signature `FILE.p7s` (default: FILE.p7s)", EnvVars: []string{"BCPUBLISH_SIGNATURE"}},
			}, codesignFlags()...)...)...),
			OnUsageError: cliutil.OnUsageError,
			Action: func(c *cli.Context) error {
				return runPolicySet(c.Context, globals(c), policySetOptions{Store: storeOpts(c, "repo"), Keys: keyOpts(c), Trust: c.String("trust"),
					File: c.String("file"), Signature: c.String("signature"), CodeSign: codesignOpts(c), Args: c.Args().Slice()})
			},
		}},
	}
}

// policySetOptions are bcpublish policy set's flags.
type policySetOptions struct {
	Store                  storeOptions
	Keys                   keyOptions
	Trust, File, Signature string
	CodeSign               codesignOptions
	Args                   []string
}

func runPolicySet(ctx context.Context, g *globalOptions, o policySetOptions) error {
	s, keys, err := openForPublish(ctx, o.Store, o.Keys, o.Args, "file", o.File, "trust", o.Trust)
	if err != nil {
		return err
	}
	trust, err := signer.LoadTrust(o.Trust)
	if err != nil {
		return cliutil.Usagef("trust", "--trust: %v", err)
	}
	sign, err := o.CodeSign.signer()
	if err != nil {
		return err
	}
	var p *repo.DevicePolicy
	var changed bool
	err = o.Keys.retrying(ctx, func() (err error) {
		p, changed, err = publisher.SetPolicy(ctx, s, keys, trust, publisher.PolicyOptions{
			File: o.File, Signature: o.Signature, Sign: sign, Now: time.Now()})
		return err
	})
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintln(g.Stdout, "policy/devices.json already has this content; nothing changed")
		return nil
	}
	fmt.Fprintf(g.Stdout, "published code-signed policy/devices.json version %d: %d PHI device classes (%s)\n", p.Version, len(p.PHIDeviceClasses), strings.Join(p.PHIDeviceClasses, ", "))
	return nil
}
