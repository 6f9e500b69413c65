package main

import (
	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
)

// withView opens the state directory read-only, without its lock, and runs
// fn: the commands that only report never wait for an agent that is
// downloading or installing (client.View).
func withView(c *cli.Context, fn func(*client.View) error) error {
	if c.Args().Len() > 0 {
		return usageErr("unexpected argument %q", c.Args().First())
	}
	v, err := client.OpenReadOnly(c.String("state"), logger(c))
	if err != nil {
		return err
	}
	return fn(v)
}
