package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func consentCommand() *cli.Command {
	return &cli.Command{
		Name:         "consent",
		Usage:        "list and revoke consent decisions for gated features",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{
			{
				Name:         "list",
				Usage:        "this device's standing decision for each feature (the consent log must verify)",
				Flags:        []cli.Flag{jsonFlag()},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runConsentList(c.Context, globals(c), jsonOptions{JSON: c.Bool("json"), Args: c.Args().Slice()})
				},
			},
			{
				Name:  "revoke",
				Usage: "withdraw consent: the feature is deactivated at once, without reinstalling",
				Flags: []cli.Flag{cliutil.Req(componentFlag()),
					// A decision and who made it: command line only, never the environment.
					cliutil.Req(&cli.StringFlag{Name: "feature", Usage: "feature `ID` (command line only)"}),
					cliutil.Req(&cli.StringFlag{Name: "by", Usage: "`NAME` of the person revoking (command line only)"}),
				},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runConsentRevoke(c.Context, globals(c), revokeOptions{Component: c.String("component"), Feature: c.String("feature"),
						By: c.String("by"), Terminal: isTerminal(os.Stdin), Args: c.Args().Slice()})
				},
			},
		},
	}
}

// jsonOptions are the flags of the commands that only report.
type jsonOptions struct {
	JSON bool
	Args []string
}

func runConsentList(ctx context.Context, g *globalOptions, o jsonOptions) error {
	return withView(ctx, g, o.Args, func(v *client.View) error {
		list, err := v.ConsentList()
		if err != nil {
			return err
		}
		if o.JSON {
			if list == nil {
				list = []client.ConsentStatus{}
			}
			return printJSON(g.Stdout, list)
		}
		return printConsentList(g.Stdout, list)
	})
}

// revokeOptions are bcagent consent revoke's flags; Terminal says whether
// stdin is one (recorded with the decision).
type revokeOptions struct {
	Component, Feature, By string
	Terminal               bool
	Args                   []string
}

func runConsentRevoke(ctx context.Context, g *globalOptions, o revokeOptions) error {
	if err := cliutil.Required([]string{"component", "feature", "by"}, o.Component, o.Feature, o.By); err != nil {
		return err
	}
	return withAgent(ctx, g, o.Args, func(a *client.Agent) error {
		if err := a.Revoke(o.Component, o.Feature, o.By, o.Terminal); err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "%s: %s revoked by %s and deactivated\n", esc(o.Component), esc(o.Feature), esc(o.By))
		return nil
	})
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
		Name:         "audit",
		Usage:        "verify and export the tamper-evident audit and consent logs",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{
			{
				Name:         "verify",
				Usage:        "check the hash chains of audit.jsonl and consent.jsonl; exit 3 naming the first bad entry",
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runAuditVerify(c.Context, globals(c), c.Args().Slice())
				},
			},
			{
				Name:         "export",
				Usage:        "print both logs after verifying them",
				Flags:        []cli.Flag{jsonFlag()},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runAuditExport(c.Context, globals(c), jsonOptions{JSON: c.Bool("json"), Args: c.Args().Slice()})
				},
			},
		},
	}
}

func runAuditVerify(ctx context.Context, g *globalOptions, args []string) error {
	return withView(ctx, g, args, func(v *client.View) error {
		rep, err := v.VerifyLogs()
		if err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "audit log verified: %d audit entries, %d consent entries, hash chains intact\n", rep.AuditEntries, rep.ConsentEntries)
		return nil
	})
}

func runAuditExport(ctx context.Context, g *globalOptions, o jsonOptions) error {
	return withView(ctx, g, o.Args, func(v *client.View) error {
		audit, consent, err := v.ExportLogs()
		if err != nil {
			return err
		}
		if o.JSON {
			if audit == nil {
				audit = []client.LogEntry{}
			}
			if consent == nil {
				consent = []client.LogEntry{}
			}
			return printJSON(g.Stdout, map[string]any{"audit": audit, "consent": consent})
		}
		fmt.Fprintln(g.Stdout, "# audit.jsonl")
		for _, e := range audit {
			fmt.Fprintln(g.Stdout, client.DescribeEntry(e))
		}
		fmt.Fprintln(g.Stdout, "# consent.jsonl")
		for _, e := range consent {
			fmt.Fprintln(g.Stdout, client.DescribeEntry(e))
		}
		return nil
	})
}

func notificationsCommand() *cli.Command {
	return &cli.Command{
		Name:         "notifications",
		Usage:        "show active notifications, each with the ID that notifications ack takes",
		Flags:        []cli.Flag{jsonFlag()},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runNotifications(c.Context, globals(c), jsonOptions{JSON: c.Bool("json"), Args: c.Args().Slice()})
		},
		Subcommands: []*cli.Command{
			{
				Name: "ack",
				Usage: "a person acknowledges an active notification after looking into it (a refused offline bundle: " +
					"refused/NAME.reason.txt): it ends, recorded in the audit log with who, why and what it said; " +
					"it is raised again if it happens again",
				ArgsUsage: "ID|KIND",
				Flags: []cli.Flag{
					// Who decided, and why: command line only, never the environment.
					cliutil.Req(&cli.StringFlag{Name: "by", Usage: "`NAME` of the person acknowledging (command line only)"}),
					&cli.StringFlag{Name: "reason", Usage: "what was found, one line of `TEXT` for the audit log (command line only)"},
				},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runNotificationAck(c.Context, globals(c), ackOptions{By: c.String("by"), Reason: c.String("reason"), Args: c.Args().Slice()})
				},
			},
		},
	}
}

func runNotifications(ctx context.Context, g *globalOptions, o jsonOptions) error {
	return withView(ctx, g, o.Args, func(v *client.View) error {
		list, err := v.Notifications()
		if err != nil {
			return err
		}
		if o.JSON {
			return printJSON(g.Stdout, list)
		}
		if len(list) == 0 {
			fmt.Fprintln(g.Stdout, "no active notifications")
		}
		for _, n := range list {
			fmt.Fprintf(g.Stdout, "[%s] %s, since %s: %s\n", esc(n.Severity), esc(n.ID), n.Since.Format(time.RFC3339), esc(n.Message))
		}
		return nil
	})
}

// ackOptions are bcagent notifications ack's flags and its ID|KIND.
type ackOptions struct {
	By, Reason string
	Args       []string
}

func runNotificationAck(ctx context.Context, g *globalOptions, o ackOptions) error {
	if err := cliutil.Required([]string{"by"}, o.By); err != nil {
		return err
	}
	if len(o.Args) != 1 || o.Args[0] == "" {
		return cliutil.Usagef("", "bcagent notifications ack takes one ID or KIND, of an active notification (bcagent notifications shows them; got %d arguments)", len(o.Args))
	}
	return withAgent(ctx, g, nil, func(a *client.Agent) error {
		ack, err := a.Acknowledge(o.Args[0], o.By, o.Reason)
		if err != nil {
			return err
		}
		n := ack.Notification
		fmt.Fprintf(g.Stdout, "%s notification %s acknowledged by %s and ended (recorded in the audit log); it is raised again if it happens again\n",
			esc(n.Severity), esc(n.ID), esc(ack.By))
		return nil
	})
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
