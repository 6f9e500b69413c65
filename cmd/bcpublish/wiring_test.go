package main

import (
	"io"
	"testing"

	"github.com/urfave/cli/v2"
)

// Every command turns urfave/cli's complaints about the command line into
// usage errors (exit 2): each declares OnUsageError itself.
func TestEveryCommandHasUsageHandler(t *testing.T) {
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.OnUsageError == nil {
				t.Errorf("%s %s: no OnUsageError", path, c.Name)
			}
			walk(path+" "+c.Name, c.Subcommands)
		}
	}
	app := newApp(io.Discard, io.Discard)
	if app.OnUsageError == nil {
		t.Error("app: no OnUsageError")
	}
	walk(app.Name, app.Commands)
}
