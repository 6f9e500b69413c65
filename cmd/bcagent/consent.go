package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/beckmanconnect/bcupdate/client"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func consentCommand() *cli.Command {
	return &cli.Command{
		Name:  "consent",
		Usage: "list and revoke consent decisions for gated features",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "this device's standing decision for each feature (the consent log must verify)",
				Flags: []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					return withView(c, func(v *client.View) error {
						list, err := v.ConsentList()
						if err != nil {
							return err
						}
						if c.Bool("json") {
							if list == nil {
								list = []client.ConsentStatus{}
							}
							return printJSON(c.App.Writer, list)
						}
						return printConsentList(c.App.Writer, list)
					})
				},
			},
			{
				Name:  "revoke",
				Usage: "withdraw consent: the feature is deactivated at once, without reinstalling",
				Flags: []cli.Flag{componentFlag(),
					// A decision and who made it: command line only, never the environment.
					&cli.StringFlag{Name: "feature", Usage: "feature `ID` (command line only)"},
					&cli.StringFlag{Name: "by", Usage: "`NAME` of the person revoking (command line only)"},
				},
				Action: func(c *cli.Context) error {
					for _, f := range []string{"component", "feature", "by"} {
						if c.String(f) == "" {
							return usageErr("--%s is required", f)
						}
					}
					return withAgent(c, func(a *client.Agent) error {
						if err := a.Revoke(c.String("component"), c.String("feature"), c.String("by"), isTerminal(os.Stdin)); err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "%s: %s revoked by %s and deactivated\n", esc(c.String("component")), esc(c.String("feature")), esc(c.String("by")))
						return nil
					})
				},
			},
		},
	}
}

// printConsentList prints consent list for people. Every field read from
// the consent log is escaped: a log may hold names no agent accepts today
// (written by an older agent, or by hand), and a control sequence in one
// could forge a row or erase the real one on a terminal.
func printConsentList(w io.Writer, list []client.ConsentStatus) error {
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no consent decisions recorded on this device")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tFEATURE\tDECISION\tACTIVE\tBY\tOS USER\tHOW\tWHEN\tVERSION")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\n", esc(r.Component), esc(r.Feature), esc(r.Decision), r.Active,
			esc(r.By), esc(r.OSUser), howGiven(r.ConsentRecord), r.Time.Format(time.RFC3339), esc(r.Version))
	}
	return tw.Flush()
}

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "verify and export the tamper-evident audit and consent logs",
		Subcommands: []*cli.Command{
			{
				Name:  "verify",
				Usage: "check the hash chains of audit.jsonl and consent.jsonl; exit 3 naming the first bad entry",
				Action: func(c *cli.Context) error {
					return withView(c, func(v *client.View) error {
						rep, err := v.VerifyLogs()
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "audit log verified: %d audit entries, %d consent entries, hash chains intact\n", rep.AuditEntries, rep.ConsentEntries)
						return nil
					})
				},
			},
			{
				Name:  "export",
				Usage: "print both logs after verifying them",
				Flags: []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					return withView(c, func(v *client.View) error {
						audit, consent, err := v.ExportLogs()
						if err != nil {
							return err
						}
						if c.Bool("json") {
							if audit == nil {
								audit = []client.LogEntry{}
							}
							if consent == nil {
								consent = []client.LogEntry{}
							}
							return printJSON(c.App.Writer, map[string]any{"audit": audit, "consent": consent})
						}
						fmt.Fprintln(c.App.Writer, "# audit.jsonl")
						for _, e := range audit {
							fmt.Fprintln(c.App.Writer, client.DescribeEntry(e))
						}
						fmt.Fprintln(c.App.Writer, "# consent.jsonl")
						for _, e := range consent {
							fmt.Fprintln(c.App.Writer, client.DescribeEntry(e))
						}
						return nil
					})
				},
			},
		},
	}
}

func notificationsCommand() *cli.Command {
	return &cli.Command{
		Name:  "notifications",
		Usage: "show active notifications",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			return withView(c, func(v *client.View) error {
				list, err := v.Notifications()
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, list)
				}
				if len(list) == 0 {
					fmt.Fprintln(c.App.Writer, "no active notifications")
				}
				for _, n := range list {
					fmt.Fprintf(c.App.Writer, "[%s] %s %s\n", esc(n.Severity), n.Since.Format(time.RFC3339), esc(n.Message))
				}
				return nil
			})
		},
	}
}

// howGiven says how a decision was given: at the prompt, or with flags, and
// whether a terminal was attached (records older than the method field say
// only whether they were typed at the prompt).
func howGiven(r client.ConsentRecord) string {
	method := r.Method
	if method == "" {
		method = client.MethodFlags
		if r.Interactive {
			method = client.MethodTerminal
		}
		return esc(method)
	}
	if method == client.MethodFlags {
		if r.Terminal {
			return "flags (at a terminal)"
		}
		return "flags (no terminal)"
	}
	return esc(method)
}
