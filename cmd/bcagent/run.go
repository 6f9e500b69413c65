package main

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "the service: poll, notify, stage and apply by policy until stopped (SIGTERM, SIGINT, service stop)",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "interval", Usage: fmt.Sprintf("poll every `DURATION`, %s (default: poll_interval from config.json, else 1h)", client.PollIntervalRange), EnvVars: []string{"BCAGENT_INTERVAL"}},
			&cli.IntFlag{Name: "cycles", Usage: fmt.Sprintf("stop after `N` polls: %s", client.CyclesRange), EnvVars: []string{"BCAGENT_CYCLES"}},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usageErr("unexpected argument %q", c.Args().First())
			}
			o := client.RunOptions{Interval: c.Duration("interval"), Cycles: c.Int("cycles"), SelfPath: selfPath, UserAgent: userAgent()}
			if c.IsSet("interval") {
				if err := client.PollIntervalRange.Check("--interval", o.Interval); err != nil {
					return err
				}
			}
			if err := client.CyclesRange.Check("--cycles", int64(o.Cycles)); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
			fmt.Fprintf(c.App.Writer, "bcagent %s serving %s\n", version, c.String("state"))
			return client.Run(c.Context, c.String("state"), log, o)
		},
	}
}
