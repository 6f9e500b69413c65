package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "verify the repository and show role versions and expiries, with warnings",
		Flags: []cli.Flag{repoFlag(), jsonFlag(),
			&cli.BoolFlag{Name: "check", Usage: "exit 1 if any role expires within the window (for monitoring)", EnvVars: []string{"BCPUBLISH_CHECK"}},
			&cli.StringFlag{Name: "warn-within", Value: "14d", Usage: "warn when root or targets expire within `DURATION` (14d, 36h); snapshot and timestamp warn when their refresh timer has stopped", EnvVars: []string{"BCPUBLISH_WARN_WITHIN"}},
		},
		Action: func(c *cli.Context) error {
			if err := need(c, "repo"); err != nil {
				return err
			}
			window, err := publisher.ParseWindow(c.String("warn-within"))
			if err != nil {
				return usageErr("--warn-within %v", err)
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			st, err := publisher.Status(c.Context, s, time.Now(), window)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES")
			for _, r := range st.Roles {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Role, r.Version, r.Expires.Format(time.RFC3339))
			}
			tw.Flush()
			fmt.Fprintf(c.App.Writer, "%d targets, %d releases; signatures verified\n", st.Targets, st.Releases)
			for _, w := range st.Warnings {
				fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", w)
			}
			if c.Bool("check") && len(st.Warnings) > 0 {
				return fmt.Errorf("%d role(s) expire within the window: %s", len(st.Warnings), strings.Join(st.Warnings, "; "))
			}
			return nil
		},
	}
}

// warnExpiry prints a warning for every role expiring within 14 days
// (root, targets) or whose refresh timer looks stopped, after a publish.
func warnExpiry(c *cli.Context, s publisher.Store) {
	warnings, err := publisher.ExpiryWarnings(c.Context, s, time.Now(), publisher.ExpiryWarnWindow)
	if err != nil {
		return
	}
	for _, w := range warnings {
		fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", w)
	}
}

func refreshCommand() *cli.Command {
	return &cli.Command{
		Name:  "refresh",
		Usage: "re-sign snapshot and timestamp so the repository does not expire (run from a timer)",
		Flags: []cli.Flag{repoFlag(), keysFlag(),
			&cli.BoolFlag{Name: "targets", Usage: "re-sign targets too (needs the targets key)", EnvVars: []string{"BCPUBLISH_REFRESH_TARGETS"}},
		},
		Action: func(c *cli.Context) error {
			roles := []string{repo.RoleSnapshot, repo.RoleTimestamp}
			if c.Bool("targets") {
				roles = append(roles, repo.RoleTargets)
			}
			s, keys, err := openWithKeys(c, roles)
			if err != nil {
				return err
			}
			var r *repo.Repo
			err = retrying(c, func() (err error) {
				r, err = publisher.Refresh(c.Context, s, keys, time.Now(), c.Bool("targets"))
				return err
			})
			if err != nil {
				return err
			}
			defer warnExpiry(c, s)
			fmt.Fprintf(c.App.Writer, "refreshed %s: snapshot v%d, timestamp v%d expires %s\n", c.String("repo"),
				r.Snapshot.Signed.Version, r.Timestamp.Signed.Version, r.Timestamp.Signed.Expires.Format(time.RFC3339))
			return nil
		},
	}
}
