package main

import (
	"errors"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/errs"
)

// watchFlag is bcagent run --watch DIR: the drop folder (client/watch.go).
func watchFlag() cli.Flag {
	return &cli.StringFlag{Name: "watch", Usage: "import every offline bundle (`DIR`/*.bcbundle) that appears in this folder, then move it to DIR/imported or DIR/refused; an existing directory, writable by administrators only",
		DefaultText: "watch_dir from config.json, else none", EnvVars: []string{"BCAGENT_WATCH"}}
}

// watchDir checks --watch and returns it as an absolute path ("" when not
// given): an existing directory outside the state directory, else a
// one-line usage error (exit 2).
func watchDir(g *globalOptions, dir string, set bool) (string, error) {
	if !set {
		return "", nil
	}
	if dir == "" {
		return "", cliutil.Usagef("watch", "--watch needs a DIR, the drop folder")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", cliutil.Usagef("watch", "--watch %s: %v", dir, err)
	}
	if err := client.CheckWatchDir("--watch", abs, g.State); err != nil {
		var ue *errs.UsageError
		if errors.As(err, &ue) {
			return "", errs.Usage("watch", ue.Err)
		}
		return "", err
	}
	return abs, nil
}
