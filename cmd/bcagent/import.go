package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:         "import",
		Usage:        "verify an offline bundle (bcpublish bundle create) as an online update is verified, and stage what it carries; then bcagent apply",
		ArgsUsage:    "FILE",
		Flags:        []cli.Flag{jsonFlag()},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runImport(c.Context, globals(c), importOptions{JSON: c.Bool("json"), Args: c.Args().Slice()})
		},
	}
}

// importOptions are bcagent import's flags and its FILE.
type importOptions struct {
	JSON bool
	Args []string
}

func runImport(ctx context.Context, g *globalOptions, o importOptions) error {
	if len(o.Args) != 1 || o.Args[0] == "" {
		return cliutil.Usagef("", "bcagent import takes one FILE, the bundle (got %d arguments)", len(o.Args))
	}
	file := o.Args[0]
	return withAgent(ctx, g, nil, func(a *client.Agent) error {
		rep, err := a.Import(ctx, file, client.ImportOptions{})
		return importOutput(g.Stdout, o.JSON, rep, err)
	})
}

func importOutput(w io.Writer, asJSON bool, rep *client.ImportReport, err error) error {
	if rep == nil {
		return err
	}
	if asJSON {
		if jerr := printJSON(w, rep); jerr != nil {
			return jerr
		}
		return err
	}
	if err == nil || errors.Is(err, client.ErrAuthorizationRequired) {
		fmt.Fprintf(w, "bundle %s verified (made %s, importable until %s, timestamp v%d)\n", esc(rep.Bundle),
			rep.Created.UTC().Format(time.RFC3339), rep.Expires.UTC().Format(time.RFC3339), rep.Timestamp)
		if stageErr := stageOutput(w, false, &client.CheckReport{Components: rep.Components}, nil); stageErr != nil {
			return stageErr
		}
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "skipped %s\n", esc(s))
	}
	return err
}
