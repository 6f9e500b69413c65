package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

func esc(s string) string { return textsafe.Escape(s) }

func printJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(textsafe.EscapeJSON(buf.Bytes()))
	return err
}

func kekCommand() *cli.Command {
	return &cli.Command{
		Name:         "kek",
		Usage:        "the key-encryption key that seals personal data at rest",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{{
			Name:         "generate",
			Usage:        "write a new 256-bit key-encryption key to FILE (0600; never overwrites)",
			ArgsUsage:    "FILE",
			OnUsageError: cliutil.OnUsageError,
			Action: func(c *cli.Context) error {
				return runKEKGenerate(c.Context, globals(c), c.Args().Slice())
			},
		}},
	}
}

func runKEKGenerate(_ context.Context, g *globalOptions, args []string) error {
	if len(args) != 1 {
		return cliutil.Usagef("", "bcfleet kek generate takes one FILE (got %d arguments)", len(args))
	}
	if err := fleet.GenerateKEK(args[0]); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "wrote key-encryption key %s (keep it apart from the database, and backed up: without it the personal data cannot be read)\n", esc(args[0]))
	return nil
}

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:         "token",
		Usage:        "enrollment tokens: create, list, revoke",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "make a one-site enrollment token; the token alone is printed on the last line (shown once)",
				Flags: []cli.Flag{dbFlag(),
					cliutil.Req(&cli.StringFlag{Name: "site", Usage: "the `SITE` its devices belong to, e.g. st-marys-lab", EnvVars: []string{"BCFLEET_SITE"}}),
					&cli.StringFlag{Name: "expires", Value: "7d", Usage: "it expires after `DURATION` (1m to 90d; 7d, 12h)", EnvVars: []string{"BCFLEET_EXPIRES"}},
					&cli.IntFlag{Name: "uses", Value: 1, Usage: fmt.Sprintf("how many devices may enroll with it, `N` (1 to %d)", fleet.MaxTokenUses), EnvVars: []string{"BCFLEET_USES"}},
					jsonFlag()},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runTokenCreate(c.Context, globals(c), tokenCreateOptions{DB: c.String("db"), Site: c.String("site"),
						Expires: c.String("expires"), Uses: c.Int("uses"), JSON: c.Bool("json"), Args: c.Args().Slice()})
				},
			},
			{
				Name:         "list",
				Usage:        "list tokens (never their secrets)",
				Flags:        []cli.Flag{dbFlag(), jsonFlag()},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runTokenList(c.Context, globals(c), listOptions{DB: c.String("db"), JSON: c.Bool("json"), Args: c.Args().Slice()})
				},
			},
			{
				Name:         "revoke",
				Usage:        "revoke a token by ID",
				ArgsUsage:    "ID",
				Flags:        []cli.Flag{dbFlag(), jsonFlag()},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runTokenRevoke(c.Context, globals(c), idOptions{DB: c.String("db"), JSON: c.Bool("json"), Args: c.Args().Slice()})
				},
			},
		},
	}
}

// tokenCreateOptions are bcfleet token create's flags.
type tokenCreateOptions struct {
	DB, Site, Expires string
	Uses              int
	JSON              bool
	Args              []string
}

func runTokenCreate(ctx context.Context, g *globalOptions, o tokenCreateOptions) error {
	if err := cliutil.Required([]string{"db", "site"}, o.DB, o.Site); err != nil {
		return err
	}
	if err := cliutil.NoArgs(o.Args); err != nil {
		return err
	}
	life, err := fleet.ParseLife(o.Expires)
	if err != nil {
		return err
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		secret, tok, err := fleet.CreateToken(ctx, st, operator(), o.Site, life, o.Uses, g.Now())
		if err != nil {
			return err
		}
		if o.JSON {
			return printJSON(g.Stdout, struct {
				*fleet.Token
				Secret string `json:"token"`
			}{tok, secret})
		}
		fmt.Fprintf(g.Stdout, "token %s for site %s, %d use(s), expires %s; give it to the person enrolling (bcagent enroll --token):\n",
			tok.ID, esc(tok.Site), tok.Uses, tok.Expires.Format(time.RFC3339))
		fmt.Fprintln(g.Stdout, secret)
		return nil
	})
}

// listOptions are the flags of the list commands without filters.
type listOptions struct {
	DB   string
	JSON bool
	Args []string
}

func runTokenList(ctx context.Context, g *globalOptions, o listOptions) error {
	if err := cliutil.Required([]string{"db"}, o.DB); err != nil {
		return err
	}
	if err := cliutil.NoArgs(o.Args); err != nil {
		return err
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		toks, err := st.Tokens(ctx)
		if err != nil {
			return err
		}
		if o.JSON {
			if toks == nil {
				toks = []fleet.Token{}
			}
			return printJSON(g.Stdout, toks)
		}
		tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSITE\tUSES LEFT\tEXPIRES\tSTATE")
		now := g.Now()
		for _, t := range toks {
			state := "valid"
			switch {
			case t.Revoked:
				state = "revoked"
			case !now.Before(t.Expires):
				state = "expired"
			case t.Uses <= 0:
				state = "used up"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", t.ID, esc(t.Site), t.Uses, t.Expires.Format(time.RFC3339), state)
		}
		return tw.Flush()
	})
}

// idOptions are the flags of a command on one ID (the argument).
type idOptions struct {
	DB, KEK string
	JSON    bool
	Args    []string
}

func (o idOptions) id(what string) (string, error) {
	if len(o.Args) != 1 {
		return "", cliutil.Usagef("", "give one %s ID (got %d arguments)", what, len(o.Args))
	}
	return o.Args[0], nil
}

func runTokenRevoke(ctx context.Context, g *globalOptions, o idOptions) error {
	if err := cliutil.Required([]string{"db"}, o.DB); err != nil {
		return err
	}
	id, err := o.id("token")
	if err != nil {
		return err
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		if err := fleet.RevokeToken(ctx, st, operator(), id, g.Now()); err != nil {
			return err
		}
		if o.JSON {
			return printJSON(g.Stdout, map[string]string{"revoked": id, "kind": "token"})
		}
		fmt.Fprintf(g.Stdout, "token %s revoked: no device can enroll with it any more\n", esc(id))
		return nil
	})
}

func devicesCommand() *cli.Command {
	return &cli.Command{
		Name:         "devices",
		Usage:        "devices and their online status and versions",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{{
			Name:  "list",
			Usage: "list devices (no personal data): online, versions, states, findings",
			Flags: []cli.Flag{dbFlag(),
				&cli.BoolFlag{Name: "offline", Usage: "only devices not heard from for three poll intervals"},
				&cli.StringFlag{Name: "site", Usage: "only devices of `SITE`"},
				&cli.StringFlag{Name: "component", Usage: "only devices with component `NAME`"},
				&cli.StringFlag{Name: "version", Usage: "only those with `VERSION` of --component installed"},
				&cli.StringFlag{Name: "state", Usage: "only those whose --component is in `STATE` (failed, awaiting-authorization, …)"},
				&cli.StringFlag{Name: "email", Usage: "only devices enrolled by `ADDRESS` (found by its keyed hash; needs --kek; recorded in the access log)"},
				&cli.StringFlag{Name: "kek", Usage: "for --email, the " + kekUsage, EnvVars: []string{"BCFLEET_KEK"}},
				jsonFlag()},
			OnUsageError: cliutil.OnUsageError,
			Action: func(c *cli.Context) error {
				return runDevicesList(c.Context, globals(c), devicesListOptions{DB: c.String("db"), KEK: c.String("kek"), Email: c.String("email"), Filter: fleet.ListFilter{
					DeviceFilter: fleet.DeviceFilter{Site: c.String("site"), Component: c.String("component"), Version: c.String("version"), State: c.String("state")},
					Offline:      c.Bool("offline")}, JSON: c.Bool("json"), Args: c.Args().Slice()})
			},
		}},
	}
}

// devicesListOptions are bcfleet devices list's flags.
type devicesListOptions struct {
	DB     string
	KEK    string
	Email  string
	Filter fleet.ListFilter
	JSON   bool
	Args   []string
}

func runDevicesList(ctx context.Context, g *globalOptions, o devicesListOptions) error {
	if err := cliutil.Required([]string{"db"}, o.DB); err != nil {
		return err
	}
	if err := cliutil.NoArgs(o.Args); err != nil {
		return err
	}
	if (o.Filter.Version != "" || o.Filter.State != "") && o.Filter.Component == "" {
		return cliutil.Usagef("component", "--version and --state are about one component: give --component too")
	}
	if o.Email != "" && o.KEK == "" {
		return cliutil.Usagef("kek", "--email is found by its keyed hash: give --kek too")
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		if o.Email != "" {
			kek, err := fleet.OpenKEKWithStore(ctx, o.KEK, st)
			if err != nil {
				return err
			}
			// Who looked for whom is personal data's use: recorded first.
			if _, err := st.AppendAccess(ctx, fleet.AccessEntry{Time: g.Now(), Actor: operator(), Action: "devices.find-by-email"}); err != nil {
				return err
			}
			o.Filter.EmailHash = fleet.EmailHash(kek, o.Email)
		}
		list, err := fleet.ListDevices(ctx, st, o.Filter, g.Now())
		if err != nil {
			return err
		}
		if o.JSON {
			return printJSON(g.Stdout, list)
		}
		tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tSITE\tINSTRUMENT\tONLINE\tLAST SEEN\tCOMPONENTS\tFINDINGS")
		for _, d := range list {
			online := "no"
			switch {
			case d.Revoked != nil:
				online = "revoked"
			case d.Online:
				online = "yes"
			}
			seen := "never"
			if d.LastSeen != nil {
				seen = d.LastSeen.Format(time.RFC3339)
			}
			var comps []string
			for _, c := range d.Components {
				comps = append(comps, fmt.Sprintf("%s %s %s", c.Name, orDash(c.Installed), c.State))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", d.ID, esc(d.Site), esc(d.Instrument.Model), esc(d.Instrument.ID), online, seen,
				esc(orDash(strings.Join(comps, "; "))), esc(orDash(strings.Join(d.Flags, "; "))))
		}
		return tw.Flush()
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func deviceCommand() *cli.Command {
	return &cli.Command{
		Name:         "device",
		Usage:        "one device: show (with its enrollee, recorded in the access log) or revoke",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{
			{
				Name:         "show",
				Usage:        "show a device with its enrollee's personal data (the read is recorded in the access log)",
				ArgsUsage:    "ID",
				Flags:        []cli.Flag{dbFlag(), kekFlag(), jsonFlag()},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runDeviceShow(c.Context, globals(c), idOptions{DB: c.String("db"), KEK: c.String("kek"), JSON: c.Bool("json"), Args: c.Args().Slice()})
				},
			},
			{
				Name:         "revoke",
				Usage:        "revoke a device: its reports are refused from now on (it must enroll again)",
				ArgsUsage:    "ID",
				Flags:        []cli.Flag{dbFlag(), jsonFlag()},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runDeviceRevoke(c.Context, globals(c), idOptions{DB: c.String("db"), JSON: c.Bool("json"), Args: c.Args().Slice()})
				},
			},
		},
	}
}

func runDeviceShow(ctx context.Context, g *globalOptions, o idOptions) error {
	if err := cliutil.Required([]string{"db", "kek"}, o.DB, o.KEK); err != nil {
		return err
	}
	id, err := o.id("device")
	if err != nil {
		return err
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		kek, err := fleet.OpenKEKWithStore(ctx, o.KEK, st)
		if err != nil {
			return err
		}
		d, err := fleet.ShowDevice(ctx, st, kek, operator(), id, g.Now())
		if err != nil {
			return err
		}
		if o.JSON {
			return printJSON(g.Stdout, d)
		}
		w := g.Stdout
		online := "offline"
		if d.Online {
			online = "online"
		}
		if d.Revoked != nil {
			online = "revoked " + d.Revoked.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "device %s (site %s), %s\n", d.ID, esc(d.Site), online)
		fmt.Fprintf(w, "instrument %s, ID %s, serial %s\n", esc(d.Instrument.Model), esc(d.Instrument.ID), esc(d.Instrument.Serial))
		fmt.Fprintf(w, "enrolled %s by %s <%s>\n", d.Enrolled.Format(time.RFC3339), esc(d.Enrollee.Name), esc(d.Enrollee.Email))
		seen := "never"
		if d.LastSeen != nil {
			seen = d.LastSeen.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "last report %s (counter %d), agent %s\n", seen, d.Counter, esc(orDash(d.AgentVersion)))
		fmt.Fprintf(w, "trusts root v%d, timestamp v%d; audit log %d entries, consent log %d entries\n", d.TUF.RootVersion, d.TUF.TimestampVersion, d.Audit.Seq, d.Consent.Seq)
		for _, c := range d.Components {
			line := fmt.Sprintf("%s: %s (installed %s", esc(c.Name), esc(c.State), esc(orDash(c.Installed)))
			if c.Staged != "" {
				line += ", staged " + esc(c.Staged)
			}
			if c.Pinned != "" {
				line += ", pinned " + esc(c.Pinned)
			}
			if len(c.ActiveFeatures) > 0 {
				line += ", active " + esc(strings.Join(c.ActiveFeatures, ","))
			}
			if len(c.PendingFeatures) > 0 {
				line += ", pending " + esc(strings.Join(c.PendingFeatures, ","))
			}
			if c.Reason != "" {
				line += "; " + esc(c.Reason)
			}
			fmt.Fprintln(w, line+")")
		}
		for _, f := range d.Flags {
			fmt.Fprintf(w, "finding: %s\n", esc(f))
		}
		return nil
	})
}

func runDeviceRevoke(ctx context.Context, g *globalOptions, o idOptions) error {
	if err := cliutil.Required([]string{"db"}, o.DB); err != nil {
		return err
	}
	id, err := o.id("device")
	if err != nil {
		return err
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		if err := fleet.RevokeDevice(ctx, st, operator(), id, g.Now()); err != nil {
			return err
		}
		if o.JSON {
			return printJSON(g.Stdout, map[string]string{"revoked": id, "kind": "device"})
		}
		fmt.Fprintf(g.Stdout, "device %s revoked: its reports are refused from now on\n", esc(id))
		return nil
	})
}

func rolloutCommand() *cli.Command {
	return &cli.Command{
		Name:         "rollout",
		Usage:        "how a release is doing across the fleet",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{{
			Name:         "status",
			Usage:        "count the devices with COMPONENT by where VERSION is on them: installed, staged, awaiting authorization, failed, rolled back, silent",
			ArgsUsage:    "COMPONENT VERSION",
			Flags:        []cli.Flag{dbFlag(), jsonFlag()},
			OnUsageError: cliutil.OnUsageError,
			Action: func(c *cli.Context) error {
				return runRolloutStatus(c.Context, globals(c), listOptions{DB: c.String("db"), JSON: c.Bool("json"), Args: c.Args().Slice()})
			},
		}},
	}
}

func runRolloutStatus(ctx context.Context, g *globalOptions, o listOptions) error {
	if err := cliutil.Required([]string{"db"}, o.DB); err != nil {
		return err
	}
	if len(o.Args) != 2 {
		return cliutil.Usagef("", "bcfleet rollout status takes COMPONENT VERSION (got %d arguments)", len(o.Args))
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		r, err := fleet.CountRollout(ctx, st, o.Args[0], o.Args[1], g.Now())
		if err != nil {
			return err
		}
		if o.JSON {
			return printJSON(g.Stdout, r)
		}
		w := g.Stdout
		fmt.Fprintf(w, "%s %s: %d devices with %s\n", esc(r.Component), esc(r.Version), r.Targeted, esc(r.Component))
		for _, row := range []struct {
			name string
			n    int
		}{{"installed", r.Installed}, {"staged", r.Staged}, {"awaiting authorization", r.Awaiting}, {"failed (rolled back)", r.Failed},
			{"rolled back by hand", r.RolledBack}, {"silent (offline)", r.Silent}, {"not there yet", r.Pending}} {
			fmt.Fprintf(w, "  %-24s %d\n", row.name, row.n)
		}
		fmt.Fprintf(w, "failure rate %.1f%% of %d reporting devices that tried it\n", 100*r.FailureRate, r.Installed+r.Failed+r.RolledBack)
		return nil
	})
}

func accessCommand() *cli.Command {
	return &cli.Command{
		Name:         "access",
		Usage:        "the hash-chained access log: every read of personal data and every admin action",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{
			{
				Name:         "list",
				Usage:        "print the access log",
				Flags:        []cli.Flag{dbFlag(), jsonFlag()},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runAccessList(c.Context, globals(c), listOptions{DB: c.String("db"), JSON: c.Bool("json"), Args: c.Args().Slice()})
				},
			},
			{
				Name:         "verify",
				Usage:        "check the access log's hash chain (exit 3 names the first bad entry)",
				Flags:        []cli.Flag{dbFlag(), jsonFlag()},
				OnUsageError: cliutil.OnUsageError,
				Action: func(c *cli.Context) error {
					return runAccessVerify(c.Context, globals(c), listOptions{DB: c.String("db"), JSON: c.Bool("json"), Args: c.Args().Slice()})
				},
			},
		},
	}
}

func runAccessList(ctx context.Context, g *globalOptions, o listOptions) error {
	if err := cliutil.Required([]string{"db"}, o.DB); err != nil {
		return err
	}
	if err := cliutil.NoArgs(o.Args); err != nil {
		return err
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		log, err := st.AccessLog(ctx)
		if err != nil {
			return err
		}
		if o.JSON {
			if log == nil {
				log = []fleet.AccessEntry{}
			}
			return printJSON(g.Stdout, log)
		}
		for _, e := range log {
			fmt.Fprintf(g.Stdout, "%d %s %s %s %s\n", e.Seq, e.Time.Format(time.RFC3339), esc(e.Actor), esc(e.Action), esc(e.Target))
		}
		return nil
	})
}

func runAccessVerify(ctx context.Context, g *globalOptions, o listOptions) error {
	if err := cliutil.Required([]string{"db"}, o.DB); err != nil {
		return err
	}
	if err := cliutil.NoArgs(o.Args); err != nil {
		return err
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		n, err := fleet.VerifyAccessLog(ctx, st)
		if o.JSON {
			out := map[string]any{"verified": err == nil, "entries": n}
			if err != nil {
				out["error"] = err.Error()
			}
			if perr := printJSON(g.Stdout, out); perr != nil {
				return perr
			}
		}
		if err != nil {
			return fmt.Errorf("%w: %w", errVerification, err)
		}
		if o.JSON {
			return nil
		}
		fmt.Fprintf(g.Stdout, "access log verified: %d entries\n", n)
		return nil
	})
}
