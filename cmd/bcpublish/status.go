package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "verify the repository and show role versions and expiries, with warnings",
		Flags: withS3(repoFlag(), jsonFlag(),
			&cli.BoolFlag{Name: "check", Usage: "exit 1 if any role expires within the window (for monitoring)", EnvVars: []string{"BCPUBLISH_CHECK"}},
			&cli.StringFlag{Name: "warn-within", Value: "14d", Usage: "warn when root or targets expire within `DURATION` (14d, 36h); snapshot and timestamp warn when their refresh timer has stopped", EnvVars: []string{"BCPUBLISH_WARN_WITHIN"}},
		),
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runStatus(c.Context, globals(c), statusOptions{Store: storeOpts(c, "repo"), JSON: c.Bool("json"), Check: c.Bool("check"),
				WarnWithin: c.String("warn-within"), Args: c.Args().Slice()})
		},
	}
}

// statusOptions are bcpublish status's flags.
type statusOptions struct {
	Store       storeOptions
	JSON, Check bool
	WarnWithin  string
	Args        []string
}

func runStatus(ctx context.Context, g *globalOptions, o statusOptions) error {
	if err := need(o.Args, "repo", o.Store.Location); err != nil {
		return err
	}
	window, err := publisher.ParseWindow(o.WarnWithin)
	if err != nil {
		return cliutil.Usagef("warn-within", "--warn-within %v", err)
	}
	s, err := o.Store.open(ctx)
	if err != nil {
		return err
	}
	st, err := publisher.Status(ctx, s, time.Now(), window)
	if err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES")
	for _, r := range st.Roles {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Role, r.Version, r.Expires.Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintf(g.Stdout, "%s, %s; signatures verified\n", plural(st.Targets, "target"), plural(st.Releases, "release"))
	for _, w := range st.Warnings {
		fmt.Fprintf(g.Stderr, "warning: %s\n", w)
	}
	if o.Check && len(st.Warnings) > 0 {
		return fmt.Errorf("%d role(s) expire within the window: %s", len(st.Warnings), strings.Join(st.Warnings, "; "))
	}
	return nil
}

// warnExpiry prints a warning for every role expiring within 14 days
// (root, targets) or whose refresh timer looks stopped, after a publish.
func warnExpiry(ctx context.Context, g *globalOptions, s publisher.Store) {
	warnings, err := publisher.ExpiryWarnings(ctx, s, time.Now(), publisher.ExpiryWarnWindow)
	if err != nil {
		return
	}
	for _, w := range warnings {
		fmt.Fprintf(g.Stderr, "warning: %s\n", w)
	}
}

func refreshCommand() *cli.Command {
	return &cli.Command{
		Name:  "refresh",
		Usage: "re-sign snapshot and timestamp so the repository does not expire (run from a timer)",
		Flags: withS3Write(withKeys(true, onlineRoles, repoFlag(), keysFlag(),
			&cli.BoolFlag{Name: "targets", Usage: "re-sign targets too (needs the targets key)", EnvVars: []string{"BCPUBLISH_REFRESH_TARGETS"}},
		)...),
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runRefresh(c.Context, globals(c), refreshOptions{Store: storeOpts(c, "repo"), Keys: keyOpts(c), Targets: c.Bool("targets"), Args: c.Args().Slice()})
		},
	}
}

// refreshOptions are bcpublish refresh's flags.
type refreshOptions struct {
	Store   storeOptions
	Keys    keyOptions
	Targets bool
	Args    []string
}

func runRefresh(ctx context.Context, g *globalOptions, o refreshOptions) error {
	roles := []string{repo.RoleSnapshot, repo.RoleTimestamp}
	if o.Targets {
		roles = append(roles, repo.RoleTargets)
	}
	s, keys, err := openWithKeys(ctx, o.Store, o.Keys, roles, o.Args)
	if err != nil {
		return err
	}
	var r *repo.Repo
	err = o.Keys.retrying(ctx, func() (err error) {
		r, err = publisher.Refresh(ctx, s, keys, time.Now(), o.Targets)
		return err
	})
	if err != nil {
		return err
	}
	defer warnExpiry(ctx, g, s)
	fmt.Fprintf(g.Stdout, "refreshed %s: snapshot v%d, timestamp v%d expires %s\n", o.Store.Location,
		r.Snapshot.Signed.Version, r.Timestamp.Signed.Version, r.Timestamp.Signed.Expires.Format(time.RFC3339))
	return nil
}

// plural is "1 release", "2 releases".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
