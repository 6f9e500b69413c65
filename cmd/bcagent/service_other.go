//go:build !windows

package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

func runAsService(string) bool { return false }

func serviceCommand() *cli.Command {
	return &cli.Command{
		Name:         "service",
		Usage:        "manage the Windows service (on Linux, use packaging/systemd/bcagent.service)",
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return errors.New("bcagent service is for Windows; on Linux install packaging/systemd/bcagent.service and use systemctl")
		},
	}
}
