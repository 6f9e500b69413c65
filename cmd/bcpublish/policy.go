package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

func policyCommand() *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "manage the signed device policy (PHI device classes)",
		Subcommands: []*cli.Command{{
			Name:  "set",
			Usage: `publish policy/devices.json: {"phi_device_classes": ["Navios EX", ...]}`,
			Flags: []cli.Flag{repoFlag(), keysFlag(),
				&cli.StringFlag{Name: "file", Usage: "the policy `FILE` (devices.json)", EnvVars: []string{"BCPUBLISH_FILE"}}},
			Action: func(c *cli.Context) error {
				s, keys, err := openForPublish(c, "file")
				if err != nil {
					return err
				}
				var p *repo.DevicePolicy
				var changed bool
				err = retrying(c, func() (err error) {
					p, changed, err = publisher.SetPolicy(c.Context, s, keys, c.String("file"), time.Now())
					return err
				})
				if err != nil {
					return err
				}
				if !changed {
					fmt.Fprintln(c.App.Writer, "policy/devices.json already has this content; nothing changed")
					return nil
				}
				fmt.Fprintf(c.App.Writer, "published policy/devices.json: %d PHI device classes (%s)\n", len(p.PHIDeviceClasses), strings.Join(p.PHIDeviceClasses, ", "))
				return nil
			},
		}},
	}
}
