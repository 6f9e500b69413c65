package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

// roleKeyFlags take a key by reference for each role, overriding --keys.
func roleKeyFlags() []cli.Flag {
	var out []cli.Flag
	for _, role := range repo.TopLevelRoles {
		out = append(out, &cli.StringSliceFlag{Name: role + "-key", Usage: "the " + role + " key: a `FILE`, file://… or a KMS URI such as awskms:///arn:… (repeatable; overrides --keys)",
			EnvVars: []string{"BCPUBLISH_" + strings.ToUpper(role) + "_KEY"}})
	}
	return out
}

// loadKeys loads the roles' keys from --ROLE-key references or --keys DIR.
func loadKeys(c *cli.Context, roles ...string) (repo.Keys, error) {
	refs := publisher.KeyRefs{}
	for _, role := range repo.TopLevelRoles {
		refs[role] = c.StringSlice(role + "-key")
	}
	return publisher.LoadKeysRefs(c.Context, c.String("keys"), refs, roles...)
}

func changeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "role", Usage: "the `ROLE` to change: root, targets, snapshot or timestamp", EnvVars: []string{"BCPUBLISH_ROLE"}},
		&cli.StringSliceFlag{Name: "add-key", Usage: "add a public key: `PUB` file or KMS URI (repeatable)", EnvVars: []string{"BCPUBLISH_ADD_KEY"}},
		&cli.StringSliceFlag{Name: "remove-key", Usage: "remove a key: `PUB` file or key id (repeatable)", EnvVars: []string{"BCPUBLISH_REMOVE_KEY"}},
		&cli.IntFlag{Name: "threshold", Usage: "signatures the role needs, `N`", EnvVars: []string{"BCPUBLISH_THRESHOLD"}},
		&cli.BoolFlag{Name: "extend", Usage: "re-issue the root with a new expiry (365 days), keys unchanged", EnvVars: []string{"BCPUBLISH_EXTEND"}},
	}
}

func change(c *cli.Context) (publisher.RootChange, error) {
	rc := publisher.RootChange{Extend: c.Bool("extend"), Role: c.String("role"), Add: c.StringSlice("add-key"), Remove: c.StringSlice("remove-key"), Threshold: c.Int("threshold")}
	if rc.Extend && rc.Role == "" {
		return rc, nil
	}
	if rc.Role == "" {
		return rc, usageErr("--role is required")
	}
	if len(rc.Add)+len(rc.Remove) == 0 && rc.Threshold == 0 {
		return rc, usageErr("nothing to change: give --add-key, --remove-key or --threshold")
	}
	return rc, nil
}

func rootCommand() *cli.Command {
	return &cli.Command{
		Name:  "root",
		Usage: "rotate keys and thresholds: stage, sign (offline, several parties), publish",
		Subcommands: []*cli.Command{
			{
				Name:  "stage",
				Usage: "write the unsigned next root with one role changed",
				Flags: append([]cli.Flag{repoFlag(),
					&cli.StringFlag{Name: "from", Usage: "continue from a staged root `FILE` (to change several roles)", EnvVars: []string{"BCPUBLISH_FROM"}},
					&cli.StringFlag{Name: "out", Usage: "write the staged root to `FILE`", EnvVars: []string{"BCPUBLISH_OUT"}},
				}, changeFlags()...),
				Action: func(c *cli.Context) error {
					if err := need(c, "repo", "out"); err != nil {
						return err
					}
					rc, err := change(c)
					if err != nil {
						return err
					}
					s, err := openStore(c)
					if err != nil {
						return err
					}
					md, err := publisher.StageRoot(c.Context, s, c.String("from"), rc, c.String("out"), timeNow())
					if err != nil {
						return err
					}
					root := md.Signed.Roles[repo.RoleRoot]
					fmt.Fprintf(c.App.Writer, "staged root v%d in %s (expires %s); it needs %d root signatures of its own and the current root's threshold: bcpublish root sign --key KEY %s\n",
						md.Signed.Version, c.String("out"), md.Signed.Expires.Format("2006-01-02"), root.Threshold, c.String("out"))
					return nil
				},
			},
			{
				Name:      "sign",
				Usage:     "add one root signature to a staged root (no repository needed)",
				ArgsUsage: "FILE",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "key", Usage: "root key: `FILE`, file://… or KMS URI", EnvVars: []string{"BCPUBLISH_KEY"}}},
				Action: func(c *cli.Context) error {
					if c.String("key") == "" || c.Args().Len() != 1 {
						return usageErr("usage: bcpublish root sign --key KEY FILE")
					}
					s, err := publisher.LoadSignerRef(c.Context, c.String("key"))
					if err != nil {
						return usageErr("--key: %v", err)
					}
					id, n, err := publisher.SignRootFile(c.Args().First(), s)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "signed %s with key %.12s… (%d signatures)\n", c.Args().First(), id, n)
					return nil
				},
			},
			{
				Name:      "publish",
				Usage:     "publish a staged root once it has enough signatures; re-sign the roles whose keys changed",
				ArgsUsage: "FILE",
				Flags:     []cli.Flag{repoFlag(), keysFlag()},
				Action: func(c *cli.Context) error {
					if c.String("repo") == "" || c.Args().Len() != 1 {
						return usageErr("usage: bcpublish root publish --repo REPO [--keys DIR] FILE")
					}
					return publishRoot(c, c.Args().First())
				},
			},
			{
				Name:  "rotate",
				Usage: "stage, sign with the root keys at hand and publish, in one step",
				Flags: append([]cli.Flag{repoFlag(), keysFlag()}, changeFlags()...),
				Action: func(c *cli.Context) error {
					if err := need(c, "repo"); err != nil {
						return err
					}
					rc, err := change(c)
					if err != nil {
						return err
					}
					s, err := openStore(c)
					if err != nil {
						return err
					}
					rootKeys, err := loadKeys(c, repo.RoleRoot)
					if err != nil {
						return err
					}
					keys, err := resignKeys(c)
					if err != nil {
						return err
					}
					md, err := publisher.RotateRoot(c.Context, s, rc, rootKeys[repo.RoleRoot], keys, timeNow())
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "published root v%d, expires %s\n", md.Signed.Version, md.Signed.Expires.Format("2006-01-02"))
					return nil
				},
			},
		},
	}
}

// resignKeys loads whatever non-root keys are available, for re-signing.
func resignKeys(c *cli.Context) (repo.Keys, error) {
	keys := repo.Keys{}
	for _, role := range []string{repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp} {
		k, err := loadKeys(c, role)
		if err == nil {
			keys[role] = k[role]
		}
	}
	return keys, nil
}

func publishRoot(c *cli.Context, file string) error {
	s, err := openStore(c)
	if err != nil {
		return err
	}
	keys, err := resignKeys(c)
	if err != nil {
		return err
	}
	md, err := publisher.PublishRoot(c.Context, s, file, keys, timeNow())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "published root v%d; agents follow it at their next check\n", md.Signed.Version)
	return nil
}
