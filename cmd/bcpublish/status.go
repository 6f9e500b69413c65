package main

import (
	"encoding/json"
	"fmt"
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
		Flags: []cli.Flag{repoFlag(), jsonFlag()},
		Action: func(c *cli.Context) error {
			if err := need(c, "repo"); err != nil {
				return err
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			st, err := publisher.Status(c.Context, s, time.Now())
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
			return nil
		},
	}
}

func refreshCommand() *cli.Command {
	return &cli.Command{
		Name:  "refresh",
		Usage: "re-sign snapshot and timestamp so the repository does not expire (run from a timer)",
		Flags: []cli.Flag{repoFlag(), keysFlag()},
		Action: func(c *cli.Context) error {
			if err := need(c, "repo", "keys"); err != nil {
				return err
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			keys, err := loadKeys(c, repo.RoleSnapshot, repo.RoleTimestamp)
			if err != nil {
				return err
			}
			r, err := publisher.Refresh(c.Context, s, keys, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "refreshed %s: snapshot v%d, timestamp v%d expires %s\n", c.String("repo"),
				r.Snapshot.Signed.Version, r.Timestamp.Signed.Version, r.Timestamp.Signed.Expires.Format(time.RFC3339))
			return nil
		},
	}
}
