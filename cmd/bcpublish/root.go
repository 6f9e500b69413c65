package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

func changeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "role", Usage: "the `ROLE` to change: root, targets, snapshot or timestamp", EnvVars: []string{"BCPUBLISH_ROLE"}},
		&cli.StringSliceFlag{Name: "add-key", Usage: "add a public key: `PUB` file or KMS URI (repeatable)", EnvVars: []string{"BCPUBLISH_ADD_KEY"}},
		&cli.StringSliceFlag{Name: "remove-key", Usage: "remove a key: `PUB` file or key id (repeatable)", EnvVars: []string{"BCPUBLISH_REMOVE_KEY"}},
		&cli.IntFlag{Name: "threshold", Usage: "signatures the role needs, `N`", DefaultText: "unchanged", EnvVars: []string{"BCPUBLISH_THRESHOLD"}},
		&cli.BoolFlag{Name: "extend", Usage: "re-issue the root with a new expiry (365 days), keys unchanged", EnvVars: []string{"BCPUBLISH_EXTEND"}},
	}
}

// changeOpts reads the change flags.
func changeOpts(c *cli.Context) publisher.RootChange {
	return publisher.RootChange{Extend: c.Bool("extend"), Role: c.String("role"), Add: c.StringSlice("add-key"), Remove: c.StringSlice("remove-key"), Threshold: c.Int("threshold")}
}

// checkChange is the usage error of a change that names no role or
// changes nothing.
func checkChange(rc publisher.RootChange) error {
	if rc.Extend && rc.Role == "" {
		return nil
	}
	if rc.Role == "" {
		return cliutil.Usagef("role", "--role is required")
	}
	if len(rc.Add)+len(rc.Remove) == 0 && rc.Threshold == 0 {
		return cliutil.Usagef("", "nothing to change: give --add-key, --remove-key or --threshold")
	}
	return nil
}

func rootCommand() *cli.Command {
	return &cli.Command{
		Name:         "root",
		Usage:        "rotate keys and thresholds: stage, sign (offline, several parties), publish",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{
			{
				Name:  "stage",
				Usage: "write the unsigned next root with one role changed",
				Flags: withS3(append([]cli.Flag{repoFlag(),
					&cli.StringFlag{Name: "from", Usage: "continue from a staged root `FILE` (to change several roles)", EnvVars: []string{"BCPUBLISH_FROM"}},
					&cli.StringFlag{Name: "out", Usage: "write the staged root to `FILE`", EnvVars: []string{"BCPUBLISH_OUT"}},
				}, changeFlags()...)...),
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runRootStage(c.Context, globals(c), rootStageOptions{Store: storeOpts(c, "repo"), From: c.String("from"), Out: c.String("out"),
						Change: changeOpts(c), Args: c.Args().Slice()})
				},
			},
			{
				Name:         "sign",
				Usage:        "add one root signature to a staged root (no repository needed)",
				ArgsUsage:    "FILE",
				Flags:        []cli.Flag{&cli.StringFlag{Name: "key", Usage: "root key: `FILE`, file://… or KMS URI", EnvVars: []string{"BCPUBLISH_KEY"}}},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runRootSign(c.Context, globals(c), rootSignOptions{Key: c.String("key"), Args: c.Args().Slice()})
				},
			},
			{
				Name:         "publish",
				Usage:        "publish a staged root once it has enough signatures; re-sign the roles whose keys changed",
				ArgsUsage:    "FILE",
				Flags:        withS3Write(withKeys(true, onlineRoles, repoFlag(), keysFlag())...),
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runRootPublish(c.Context, globals(c), rootPublishOptions{Store: storeOpts(c, "repo"), Keys: keyOpts(c), Args: c.Args().Slice()})
				},
			},
			{
				Name:         "rotate",
				Usage:        "stage, sign with the root keys at hand and publish, in one step",
				Flags:        withS3Write(withKeys(true, repo.TopLevelRoles, append([]cli.Flag{repoFlag(), keysFlag()}, changeFlags()...)...)...),
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runRootRotate(c.Context, globals(c), rootRotateOptions{Store: storeOpts(c, "repo"), Keys: keyOpts(c), Change: changeOpts(c), Args: c.Args().Slice()})
				},
			},
		},
	}
}

// rootStageOptions are bcpublish root stage's flags.
type rootStageOptions struct {
	Store     storeOptions
	From, Out string
	Change    publisher.RootChange
	Args      []string
}

func runRootStage(ctx context.Context, g *globalOptions, o rootStageOptions) error {
	if err := need(o.Args, "repo", o.Store.Location, "out", o.Out); err != nil {
		return err
	}
	if err := checkChange(o.Change); err != nil {
		return err
	}
	s, err := o.Store.open(ctx)
	if err != nil {
		return err
	}
	md, err := publisher.StageRoot(ctx, s, o.From, o.Change, o.Out, timeNow())
	if err != nil {
		return err
	}
	root := md.Signed.Roles[repo.RoleRoot]
	fmt.Fprintf(g.Stdout, "staged root v%d in %s (expires %s); it needs %d root signatures of its own and the current root's threshold: bcpublish root sign --key KEY %s\n",
		md.Signed.Version, o.Out, md.Signed.Expires.Format("2006-01-02"), root.Threshold, o.Out)
	return nil
}

// rootSignOptions are bcpublish root sign's flag and its FILE argument.
type rootSignOptions struct {
	Key  string
	Args []string
}

func runRootSign(ctx context.Context, g *globalOptions, o rootSignOptions) error {
	if o.Key == "" || len(o.Args) != 1 {
		flag := ""
		if o.Key == "" {
			flag = "key"
		}
		return cliutil.Usagef(flag, "usage: bcpublish root sign --key KEY FILE")
	}
	s, err := publisher.LoadSignerRef(ctx, o.Key)
	if err != nil {
		return cliutil.Usagef("key", "--key: %v", err)
	}
	id, n, err := publisher.SignRootFile(o.Args[0], s)
	if errors.Is(err, repo.ErrWrongKey) {
		return fmt.Errorf("--key %s: %w (root.key of the key directory, or its KMS URI)", o.Key, err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "signed %s with key %.12s… (%d signatures)\n", o.Args[0], id, n)
	return nil
}

// rootPublishOptions are bcpublish root publish's flags and its FILE
// argument.
type rootPublishOptions struct {
	Store storeOptions
	Keys  keyOptions
	Args  []string
}

func runRootPublish(ctx context.Context, g *globalOptions, o rootPublishOptions) error {
	if o.Store.Location == "" || len(o.Args) != 1 {
		flag := ""
		if o.Store.Location == "" {
			flag = "repo"
		}
		return cliutil.Usagef(flag, "usage: bcpublish root publish --repo REPO [--keys DIR] FILE")
	}
	s, err := o.Store.open(ctx)
	if err != nil {
		return err
	}
	keys, err := resignKeys(ctx, o.Keys)
	if err != nil {
		return err
	}
	md, err := publisher.PublishRoot(ctx, s, o.Args[0], keys, timeNow())
	if err != nil {
		return o.Keys.explain(err)
	}
	fmt.Fprintf(g.Stdout, "published root v%d; agents follow it at their next check\n", md.Signed.Version)
	return nil
}

// rootRotateOptions are bcpublish root rotate's flags.
type rootRotateOptions struct {
	Store  storeOptions
	Keys   keyOptions
	Change publisher.RootChange
	Args   []string
}

func runRootRotate(ctx context.Context, g *globalOptions, o rootRotateOptions) error {
	if err := need(o.Args, "repo", o.Store.Location); err != nil {
		return err
	}
	if err := checkChange(o.Change); err != nil {
		return err
	}
	s, err := o.Store.open(ctx)
	if err != nil {
		return err
	}
	rootKeys, err := o.Keys.load(ctx, repo.RoleRoot)
	if err != nil {
		return err
	}
	keys, err := resignKeys(ctx, o.Keys)
	if err != nil {
		return err
	}
	md, err := publisher.RotateRoot(ctx, s, o.Change, rootKeys[repo.RoleRoot], keys, timeNow())
	if err != nil {
		return o.Keys.explain(err)
	}
	fmt.Fprintf(g.Stdout, "published root v%d, expires %s\n", md.Signed.Version, md.Signed.Expires.Format("2006-01-02"))
	return nil
}

// resignKeys loads whatever non-root keys are available, for re-signing.
func resignKeys(ctx context.Context, k keyOptions) (repo.Keys, error) {
	keys := repo.Keys{}
	for _, role := range []string{repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp} {
		loaded, err := k.load(ctx, role)
		if err == nil {
			keys[role] = loaded[role]
		}
	}
	return keys, nil
}
