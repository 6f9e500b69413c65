package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:         "config",
		Usage:        "show or change the agent's settings (config.json) after init",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{
			{
				Name:         "show",
				Usage:        "list every setting, its value and what it does",
				Flags:        []cli.Flag{jsonFlag()},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runConfigShow(c.Context, globals(c), configShowOptions{JSON: c.Bool("json"), Args: c.Args().Slice()})
				},
			},
			{
				Name:         "set",
				Usage:        "change one setting, checked as init checks it and recorded in the audit log; a running service uses it from its next cycle",
				ArgsUsage:    "KEY VALUE",
				Description:  "KEY is one of those bcagent config show lists (policy.COMPONENT for a component's policy). Lists are comma-separated; \"\" is the default or the empty list.\nExample: bcagent config set channel beta",
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runConfigSet(c.Context, globals(c), configSetOptions{Args: c.Args().Slice()})
				},
			},
		},
	}
}

// configShowOptions are bcagent config show's flags.
type configShowOptions struct {
	JSON bool
	Args []string
}

func runConfigShow(ctx context.Context, g *globalOptions, o configShowOptions) error {
	return withView(ctx, g, o.Args, func(v *client.View) error {
		values := client.ConfigValues(v.Config())
		if o.JSON {
			return printJSON(g.Stdout, values)
		}
		tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tVALUE\tABOUT")
		for _, cv := range values {
			about := cv.About
			if cv.Fixed != "" {
				about += " (fixed at init)"
			}
			val := cv.Value
			if val == "" {
				val = `""`
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", esc(cv.Key), esc(val), esc(about))
		}
		return tw.Flush()
	})
}

// configSetOptions are bcagent config set's arguments: KEY VALUE.
type configSetOptions struct {
	Args []string
}

func runConfigSet(ctx context.Context, g *globalOptions, o configSetOptions) error {
	if len(o.Args) != 2 {
		return cliutil.Usagef("", "bcagent config set takes KEY VALUE (got %d arguments); bcagent config show lists the keys, \"\" is the default", len(o.Args))
	}
	key, value := o.Args[0], o.Args[1]
	err := withAgent(ctx, g, nil, func(a *client.Agent) error {
		before, after, err := a.SetConfig(key, value)
		if err != nil {
			return err
		}
		if before == after {
			fmt.Fprintf(g.Stdout, "%s is already %q; nothing changed\n", esc(key), esc(after))
			key = "" // nothing to look at
			return nil
		}
		fmt.Fprintf(g.Stdout, "%s: %q -> %q (recorded in the audit log; a running service uses it from its next cycle)\n", esc(key), esc(before), esc(after))
		return nil
	})
	if err != nil {
		return err
	}
	switch key {
	case "repository_url", "repository_mirrors", "components", "channel", "platform", "allowed_hosts", "trust_dir":
		// Where the agent looks changed: look once, as init does, with
		// an agent opened on the new settings.
		return withAgent(ctx, g, nil, func(a *client.Agent) error {
			probeRepository(ctx, g, a, "")
			return nil
		})
	}
	return nil
}
