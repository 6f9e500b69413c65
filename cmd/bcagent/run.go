package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/eventlog"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "the service: poll, notify, stage and apply by policy until stopped (SIGTERM, SIGINT, service stop)",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "interval", Usage: fmt.Sprintf("poll every `DURATION`, %s", client.PollIntervalRange), DefaultText: "poll_interval from config.json, else 1h", EnvVars: []string{"BCAGENT_INTERVAL"}},
			&cli.IntFlag{Name: "cycles", Usage: fmt.Sprintf("stop after `N` polls: %s", client.CyclesRange), EnvVars: []string{"BCAGENT_CYCLES"}},
			watchFlag(),
		},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runRun(c.Context, globals(c), runOptions{
				Interval: c.Duration("interval"), IntervalSet: c.IsSet("interval"), Cycles: c.Int("cycles"),
				Watch: c.String("watch"), WatchSet: c.IsSet("watch"), Args: c.Args().Slice()})
		},
	}
}

// runOptions are bcagent run's flags.
type runOptions struct {
	Interval    time.Duration
	IntervalSet bool // --interval was given (else config.json's poll_interval)
	Cycles      int
	Watch       string // --watch DIR, the drop folder (watch.go)
	WatchSet    bool
	Args        []string
}

// runRun is the service loop, until ctx is done.
func runRun(ctx context.Context, g *globalOptions, o runOptions) error {
	if err := cliutil.NoArgs(o.Args); err != nil {
		return err
	}
	ro := client.RunOptions{Interval: o.Interval, Cycles: o.Cycles, SelfPath: selfPath, UserAgent: userAgent()}
	if o.IntervalSet {
		if err := client.PollIntervalRange.Check("--interval", ro.Interval); err != nil {
			return err
		}
	}
	if err := client.CyclesRange.Check("--cycles", int64(ro.Cycles)); err != nil {
		return err
	}
	dir, err := watchDir(g, o.Watch, o.WatchSet)
	if err != nil {
		return err
	}
	ro.WatchDir = dir
	log := g.Log.NewLogger(g.Stderr)
	if ev := agentEvents(); ev != nil {
		// On Windows, run at a console writes the Application log as the
		// service does (the handler carries the sink to the agent).
		log = slog.New(eventlog.NewHandler(log.Handler(), ev))
	}
	if dir != "" {
		fmt.Fprintf(g.Stdout, "bcagent %s serving %s, importing offline bundles dropped in %s\n", version, g.State, dir)
	} else {
		fmt.Fprintf(g.Stdout, "bcagent %s serving %s\n", version, g.State)
	}
	return client.Run(ctx, g.State, log, ro)
}
