package main

import (
	"context"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

// withView opens the state directory read-only, without its lock, and runs
// fn: the commands that only report never wait for an agent that is
// downloading or installing (client.View).
func withView(_ context.Context, g *globalOptions, args []string, fn func(*client.View) error) error {
	if err := cliutil.NoArgs(args); err != nil {
		return err
	}
	v, err := client.OpenReadOnly(g.State, g.logger())
	if err != nil {
		return err
	}
	return fn(v)
}
