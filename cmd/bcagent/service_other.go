//go:build !windows

package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

func runAsService(string) bool { return false }

// agentEvents is nil: the Event Log is Windows'; on Linux the journal
// has the service's log (docs/operations.md, "Logs").
func agentEvents() client.EventSink { return nil }

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
