package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// esc makes untrusted text (names, versions, messages, anything read from
// the state directory or metadata) safe to print on a terminal; every
// text output goes through it.
func esc[S ~string](s S) string { return textsafe.Escape(string(s)) }

// printJSON prints v for scripts. The values stay exactly what they are;
// runes a terminal could act on are written as JSON \u escapes: C0
// controls and U+2028/U+2029 by encoding/json, C1, bidi and other
// invisible ones by textsafe.EscapeJSON.
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

// describe renders one line per component for people.
func describe(w io.Writer, verb string, rep *client.CheckReport) {
	for _, c := range rep.Components {
		installed := esc(orNothing(c.Installed))
		name := esc(c.Name)
		switch c.State {
		case client.StateUpdateAvailable:
			fmt.Fprintf(w, "%s: %s available (installed: %s)\n", name, esc(c.Available), installed)
		case client.StateStaged:
			fmt.Fprintf(w, "%s: %s staged and verified, ready to apply (installed: %s)\n", name, esc(c.Staged), installed)
		case client.StateUpToDate:
			fmt.Fprintf(w, "%s: up to date (installed: %s)\n", name, installed)
		case client.StateAwaitingAuthorization:
			fmt.Fprintf(w, "%s: %s staged; waits for a person to authorize its new features (installed: %s)\n", name, esc(c.Staged), installed)
		case client.StateNoRelease:
			fmt.Fprintf(w, "%s: no release (installed: %s): %s\n", name, installed, esc(c.Problem))
		default:
			why := ""
			if c.Problem != "" {
				why = ": " + esc(c.Problem)
			}
			fmt.Fprintf(w, "%s: %s (installed: %s)%s\n", name, esc(c.State), installed, why)
		}
	}
	_ = verb
}

func stageOutput(w io.Writer, asJSON bool, rep *client.CheckReport, err error) error {
	if rep == nil {
		return err
	}
	if asJSON {
		if jerr := printJSON(w, rep); jerr != nil {
			return jerr
		}
		return err
	}
	for _, cr := range rep.Components {
		if cr.State == client.StateAwaitingAuthorization {
			fmt.Fprintf(w, "%s: %s staged and verified; it waits for a person to authorize its new features (bcagent apply)\n", esc(cr.Name), esc(cr.Staged))
			continue
		}
		describe(w, "", &client.CheckReport{Components: []client.ComponentReport{cr}})
	}
	return err
}

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:         "check",
		Usage:        "refresh verified metadata and report available updates",
		Flags:        []cli.Flag{jsonFlag()},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runCheck(c.Context, globals(c), checkOptions{JSON: c.Bool("json"), Args: c.Args().Slice()})
		},
	}
}

// checkOptions are bcagent check's flags.
type checkOptions struct {
	JSON bool
	Args []string
}

func runCheck(ctx context.Context, g *globalOptions, o checkOptions) error {
	return withAgent(ctx, g, o.Args, func(a *client.Agent) error {
		rep, err := a.Check(ctx)
		if err != nil {
			return err
		}
		if o.JSON {
			if err := printJSON(g.Stdout, rep); err != nil {
				return err
			}
		} else {
			describe(g.Stdout, "check", rep)
		}
		return noRelease(rep)
	})
}

// noRelease is the error (exit 1) for a check that found components the
// repository offers nothing for: a configured name or channel that is
// wrong, or a release not published yet. Such a PC would never update,
// so it is never "up to date".
func noRelease(rep *client.CheckReport) error {
	if rep == nil {
		return nil
	}
	var names []string
	for _, c := range rep.Components {
		if c.State == client.StateNoRelease {
			names = append(names, c.Name)
		}
	}
	switch len(names) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("component %s has no release in the repository for this PC (see above); it will not be updated until that is fixed", esc(names[0]))
	}
	return fmt.Errorf("components %s have no release in the repository for this PC (see above); they will not be updated until that is fixed", esc(strings.Join(names, ", ")))
}

func stageCommand() *cli.Command {
	return &cli.Command{
		Name:         "stage",
		Usage:        "download and verify available updates (TUF and code signature); install nothing",
		Flags:        []cli.Flag{componentFlag(), jsonFlag()},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runStage(c.Context, globals(c), stageOptions{Component: c.String("component"), JSON: c.Bool("json"),
				Progress: !c.Bool("json") && isTerminal(os.Stdout), Args: c.Args().Slice()})
		},
	}
}

// stageOptions are bcagent stage's flags; Progress draws download bars.
type stageOptions struct {
	Component string
	JSON      bool
	Progress  bool
	Args      []string
}

func runStage(ctx context.Context, g *globalOptions, o stageOptions) error {
	return withAgent(ctx, g, o.Args, func(a *client.Agent) error {
		if o.Progress {
			bars := map[string]*progressbar.ProgressBar{}
			a.SetProgress(func(component string, done, total int64) {
				bar := bars[component]
				if bar == nil {
					bar = progressbar.DefaultBytes(total, "downloading "+component)
					bars[component] = bar
				}
				bar.Set64(done)
			})
		}
		rep, err := a.Stage(ctx, o.Component)
		if err := stageOutput(g.Stdout, o.JSON, rep, err); err != nil {
			return err
		}
		return noRelease(rep)
	})
}

func applyCommand() *cli.Command {
	return &cli.Command{
		Name:  "apply",
		Usage: "install staged updates after verifying them again; asks a person to authorize gated features",
		Flags: []cli.Flag{componentFlag(), jsonFlag(),
			// A person's decision and their name come only from the command
			// line or the terminal: never from the environment (issue 21).
			&cli.StringSliceFlag{Name: "authorize", Usage: "authorize feature `ID` (repeatable; needs --by; command line only, never the environment)"},
			&cli.StringSliceFlag{Name: "decline", Usage: "decline feature `ID`: install with it off (repeatable; needs --by; command line only)"},
			&cli.StringFlag{Name: "by", Usage: "`NAME` of the person deciding, recorded in the consent log (command line only)"},
			&cli.BoolFlag{Name: "no-prompt", Usage: "never ask at the terminal (a release waiting for a decision exits 4)", EnvVars: []string{"BCAGENT_NO_PROMPT"}},
		},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runApply(c.Context, globals(c), applyOptions{Component: c.String("component"), JSON: c.Bool("json"),
				Authorize: c.StringSlice("authorize"), Decline: c.StringSlice("decline"), By: c.String("by"), NoPrompt: c.Bool("no-prompt"),
				Terminal: isTerminal(os.Stdin), Stdin: os.Stdin, Args: c.Args().Slice()})
		},
	}
}

// applyOptions are bcagent apply's flags; Terminal says whether Stdin is
// one (a person may be asked there).
type applyOptions struct {
	Component          string
	JSON               bool
	Authorize, Decline []string
	By                 string
	NoPrompt           bool
	Terminal           bool
	Stdin              io.Reader
	Args               []string
}

func runApply(ctx context.Context, g *globalOptions, o applyOptions) error {
	return withAgent(ctx, g, o.Args, func(a *client.Agent) error {
		before, err := a.Status()
		if err != nil {
			return err
		}
		ao := client.ApplyOptions{Authorize: o.Authorize, Decline: o.Decline, By: o.By, Terminal: o.Terminal}
		if !o.NoPrompt && !o.JSON && ao.Terminal {
			ao.Prompter = &client.TerminalPrompter{In: o.Stdin, Out: g.Stdout, By: o.By}
		}
		rep, err := a.Apply(ctx, o.Component, ao)
		if rep == nil {
			return err
		}
		if o.JSON {
			if jerr := printJSON(g.Stdout, rep); jerr != nil {
				return jerr
			}
			return err
		}
		old := map[string]string{}
		was := map[string]client.StateName{}
		for _, cs := range before.Components {
			if cs.Installed != nil {
				old[cs.Name] = *cs.Installed
			}
			was[cs.Name] = cs.State
		}
		after, _ := a.Status()
		w := g.Stdout
		for i, cr := range rep.Components {
			switch {
			case cr.Installed != old[cr.Name]:
				fmt.Fprintf(w, "%s: installed %s (was %s)%s\n", esc(cr.Name), esc(cr.Installed), esc(orNothing(old[cr.Name])), featureLine(after, i))
			case cr.State == client.StateAwaitingAuthorization:
				fmt.Fprintf(w, "%s: %s is staged and waits for authorization; nothing was activated\n", esc(cr.Name), esc(cr.Staged))
			case cr.State == client.StateFailed && was[cr.Name] != client.StateFailed:
				fmt.Fprintf(w, "%s: the update failed and was rolled back; still on %s (%s)\n", esc(cr.Name), esc(orNothing(cr.Installed)), esc(cr.Problem))
			default:
				fmt.Fprintf(w, "%s: nothing staged to apply (installed: %s)%s\n", esc(cr.Name), esc(orNothing(cr.Installed)), featureLine(after, i))
			}
		}
		return err
	})
}

func featureLine(st *client.StatusReport, i int) string {
	if st == nil || i >= len(st.Components) || len(st.Components[i].Features) == 0 {
		return ""
	}
	var on, off []string
	for _, f := range st.Components[i].Features {
		if f.Active {
			on = append(on, esc(f.ID))
		} else {
			off = append(off, esc(f.ID)+" ("+esc(f.Consent)+")")
		}
	}
	s := ""
	if len(on) > 0 {
		s += "; active: " + strings.Join(on, ", ")
	}
	if len(off) > 0 {
		s += "; off: " + strings.Join(off, ", ")
	}
	return s
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:         "status",
		Usage:        "show the device, repository, last check, each component's versions and state, and a health verdict; exits 0 ok, 4 a release waits for a person, 1 needs attention, 3 critical (for monitoring); never waits for a running agent",
		Flags:        []cli.Flag{jsonFlag()},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runStatus(c.Context, globals(c), statusOptions{JSON: c.Bool("json"), Args: c.Args().Slice()})
		},
	}
}

// statusOptions are bcagent status's flags.
type statusOptions struct {
	JSON bool
	Args []string
}

func runStatus(ctx context.Context, g *globalOptions, o statusOptions) error {
	return withView(ctx, g, o.Args, func(v *client.View) error {
		st, err := v.Status()
		if err != nil {
			return err
		}
		if o.JSON {
			if err := printJSON(g.Stdout, st); err != nil {
				return err
			}
		} else {
			printStatus(g.Stdout, st)
		}
		return healthExit(st.Health)
	})
}

// healthError ends bcagent status with the exit code of its verdict
// (docs/design.md), the report already printed.
type healthError struct{ code int }

func (e *healthError) Error() string { return fmt.Sprintf("status: exit %d", e.code) }

// healthExit is nil for a healthy agent, else the verdict's exit code:
// 4 a release waits for a person, 1 something needs attention, 3 a
// critical notification (possibly an attack).
func healthExit(h client.Health) error {
	if code := healthCode(h); code != exitOK {
		return &healthError{code: code}
	}
	return nil
}

func healthCode(h client.Health) int {
	switch h {
	case client.HealthAwaiting:
		return exitAuthorizationRequired
	case client.HealthAttention:
		return exitFailure
	case client.HealthVerification:
		return exitVerification
	}
	return exitOK
}

// printLastImport is status's line for the last bundle that verified.
func printLastImport(w io.Writer, li *client.ImportResult) {
	window := "valid until " + li.Expires.Format(time.RFC3339)
	if li.Expired {
		window = "EXPIRED on " + li.Expires.Format(time.RFC3339)
	}
	what := "nothing newer than what is installed"
	if len(li.Staged) > 0 {
		what = "staged " + strings.Join(li.Staged, ", ")
	}
	if li.Outcome == client.ImportAwaiting {
		what += ", waiting for a person to authorize a feature"
	}
	fmt.Fprintf(w, "last import: %s, bundle %s (made %s, %s): %s\n", li.At.Format(time.RFC3339), esc(li.Bundle),
		li.Created.Format(time.RFC3339), window, esc(what))
}

// printStatus prints status for people, every name and version escaped.
func printStatus(w io.Writer, st *client.StatusReport) {
	phi := ""
	if st.Device.PHI {
		phi = ", holds PHI"
	}
	fmt.Fprintf(w, "device %s (%s%s)\n", esc(st.Device.ID), esc(st.Device.Model), phi)
	exp := "no verified metadata yet"
	if st.Repository.Expires != nil {
		exp = fmt.Sprintf("timestamp v%d, expires %s", st.Repository.TimestampVersion, st.Repository.Expires.Format("2006-01-02T15:04:05Z"))
	}
	fmt.Fprintf(w, "repository %s (%s)\n", esc(st.Repository.URL), exp)
	if len(st.Repository.Mirrors) > 1 {
		fmt.Fprintf(w, "mirrors, in order: %s\n", esc(strings.Join(st.Repository.Mirrors, ", ")))
	}
	if m := st.Repository.Mirror; m != nil {
		used := "none could be used"
		if m.Used != "" {
			used = "used " + esc(m.Used)
		}
		fmt.Fprintf(w, "last check or stage (%s): %s\n", m.At.Format(time.RFC3339), used)
		for _, f := range m.Failed {
			fmt.Fprintf(w, "  skipped %s (%s): %s\n", esc(f.URL), esc(string(f.Kind)), esc(f.Error))
		}
	}
	switch lc := st.LastCheck; {
	case lc == nil:
		fmt.Fprintln(w, "last check: never")
	case lc.OK:
		fmt.Fprintf(w, "last check: %s, ok\n", lc.At.Format(time.RFC3339))
	default:
		last := "never"
		if !lc.LastSuccess.IsZero() {
			last = lc.LastSuccess.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "last check: %s, FAILED (%s; last success %s; why below)\n", lc.At.Format(time.RFC3339), esc(lc.Failure), last)
	}
	if li := st.LastImport; li != nil {
		printLastImport(w, li)
	}
	if st.Activity != nil {
		fmt.Fprintf(w, "agent %s\n", esc(st.Activity.Describe(time.Now())))
	}
	if f := st.Fleet; f != nil {
		line := fmt.Sprintf("fleet %s, device %s of site %s", esc(f.URL), esc(f.DeviceID), esc(f.Site))
		switch {
		case f.Revoked:
			line += ": REVOKED, not reporting (enroll again: bcagent enroll)"
		case f.LastAccepted != nil:
			line += ", last report accepted " + f.LastAccepted.Format(time.RFC3339)
		default:
			line += ", no report accepted yet"
		}
		if f.LastError != "" && !f.Revoked {
			line += "; last attempt failed: " + esc(f.LastError)
		}
		if f.Queued > 0 {
			line += fmt.Sprintf("; %d report(s) queued", f.Queued)
		}
		fmt.Fprintln(w, line)
	}
	for _, warn := range st.Warnings {
		fmt.Fprintf(w, "warning: %s\n", esc(warn))
	}
	for _, cs := range st.Components {
		parts := []string{"installed " + esc(deref(cs.Installed))}
		if cs.ReleaseUnknown {
			parts = append(parts, "its release metadata was lost with state.json and is re-learned at the next check (no feature active until then)")
		}
		if cs.Staged != nil {
			parts = append(parts, "staged "+esc(*cs.Staged))
		}
		if cs.Available != nil {
			parts = append(parts, "available "+esc(*cs.Available))
		}
		for _, f := range cs.Features {
			onOff := "off"
			if f.Active {
				onOff = "active"
			}
			parts = append(parts, fmt.Sprintf("feature %s %s (consent %s)", esc(f.ID), onOff, esc(f.Consent)))
		}
		why := ""
		if cs.Why != "" {
			why = "; " + esc(cs.Why)
		}
		fmt.Fprintf(w, "%s: %s (%s%s)\n", esc(cs.Name), esc(cs.State), strings.Join(parts, ", "), why)
	}
	if st.Health == client.HealthOK {
		fmt.Fprintln(w, "health: ok")
		return
	}
	fmt.Fprintf(w, "health: %s (exit %d):\n", esc(st.Health), healthCode(st.Health))
	critical := map[string]bool{}
	for _, n := range st.Alerts {
		critical[n.Message] = n.Severity == client.SeverityCritical
	}
	for _, p := range st.Problems {
		mark := "-"
		if critical[p] {
			mark = "CRITICAL:"
		}
		fmt.Fprintf(w, "  %s %s\n", mark, esc(p))
	}
}

func deref(s *string) string {
	if s == nil {
		return "nothing"
	}
	return *s
}

func rollbackCommand() *cli.Command {
	return &cli.Command{
		Name:         "rollback",
		Usage:        "switch a component back to its previous installed version",
		Flags:        []cli.Flag{cliutil.Req(componentFlag())},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runRollback(c.Context, globals(c), componentOptions{Component: c.String("component"), Args: c.Args().Slice()})
		},
	}
}

// componentOptions are the flags of rollback and unpin.
type componentOptions struct {
	Component string
	Args      []string
}

func runRollback(ctx context.Context, g *globalOptions, o componentOptions) error {
	if err := cliutil.Required([]string{"component"}, o.Component); err != nil {
		return err
	}
	return withAgent(ctx, g, o.Args, func(a *client.Agent) error {
		rep, err := a.Rollback(ctx, o.Component)
		if err != nil {
			return err
		}
		for _, cr := range rep.Components {
			if cr.Name == o.Component {
				fmt.Fprintf(g.Stdout, "%s: rolled back to %s\n", esc(cr.Name), esc(cr.Installed))
			}
		}
		return nil
	})
}

func pinCommand() *cli.Command {
	return &cli.Command{
		Name:         "pin",
		Usage:        "hold a component on a version (also an older one) whatever its channel says",
		Flags:        []cli.Flag{cliutil.Req(componentFlag()), cliutil.Req(&cli.StringFlag{Name: "version", Usage: "the `VERSION` to hold", EnvVars: []string{"BCAGENT_VERSION"}})},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runPin(c.Context, globals(c), pinOptions{Component: c.String("component"), Version: c.String("version"), Args: c.Args().Slice()})
		},
	}
}

// pinOptions are bcagent pin's flags.
type pinOptions struct {
	Component, Version string
	Args               []string
}

func runPin(ctx context.Context, g *globalOptions, o pinOptions) error {
	if err := cliutil.Required([]string{"component", "version"}, o.Component, o.Version); err != nil {
		return err
	}
	return withAgent(ctx, g, o.Args, func(a *client.Agent) error {
		if err := a.Pin(o.Component, o.Version); err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "%s: pinned to %s (bcagent unpin to follow the channel again)\n", esc(o.Component), esc(o.Version))
		return nil
	})
}

func unpinCommand() *cli.Command {
	return &cli.Command{
		Name:         "unpin",
		Usage:        "let a pinned component follow its channel again",
		Flags:        []cli.Flag{cliutil.Req(componentFlag())},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runUnpin(c.Context, globals(c), componentOptions{Component: c.String("component"), Args: c.Args().Slice()})
		},
	}
}

func runUnpin(ctx context.Context, g *globalOptions, o componentOptions) error {
	if err := cliutil.Required([]string{"component"}, o.Component); err != nil {
		return err
	}
	return withAgent(ctx, g, o.Args, func(a *client.Agent) error {
		if err := a.Unpin(o.Component); err != nil {
			return err
		}
		fmt.Fprintf(g.Stdout, "%s: follows its channel again\n", esc(o.Component))
		return nil
	})
}

func enrollCommand() *cli.Command {
	return &cli.Command{
		Name:  "enroll",
		Usage: "enroll this PC with the fleet service: a key of its own, a one-time token, the enrollee and the instrument",
		Flags: []cli.Flag{
			cliutil.Req(&cli.StringFlag{Name: "fleet", Usage: "the fleet service's `URL` (https; plain http only to loopback); joins allowed_hosts", EnvVars: []string{"BCAGENT_FLEET"}}),
			&cli.StringFlag{Name: "token", Usage: "the enrollment `TOKEN` (bcfleet token create); this or --token-file is required", EnvVars: []string{"BCAGENT_FLEET_TOKEN"}},
			&cli.StringFlag{Name: "token-file", Usage: "read the enrollment token from `FILE` (its one line) instead of --token, which shows in process lists and installer logs (the MSI's ENROLLTOKENFILE)", EnvVars: []string{"BCAGENT_FLEET_TOKEN_FILE"}},
			cliutil.Req(&cli.StringFlag{Name: "email", Usage: "the enrollee's email `ADDRESS` (sealed by the service)", EnvVars: []string{"BCAGENT_ENROLL_EMAIL"}}),
			cliutil.Req(&cli.StringFlag{Name: "name", Usage: "the enrollee's `NAME` (sealed by the service)", EnvVars: []string{"BCAGENT_ENROLL_NAME"}}),
			cliutil.Req(&cli.StringFlag{Name: "instrument-model", Usage: "the instrument's `MODEL`, e.g. \"Navios EX\"", EnvVars: []string{"BCAGENT_INSTRUMENT_MODEL"}}),
			cliutil.Req(&cli.StringFlag{Name: "instrument-id", Usage: "the instrument's `ID`", EnvVars: []string{"BCAGENT_INSTRUMENT_ID"}}),
			cliutil.Req(&cli.StringFlag{Name: "serial", Usage: "the instrument's serial `NUMBER`", EnvVars: []string{"BCAGENT_INSTRUMENT_SERIAL"}}),
			&cli.BoolFlag{Name: "new-device", Usage: "enroll afresh instead of replacing this PC's enrolled device (its key is lost, or the service no longer takes it); an admin revokes the old one"},
			jsonFlag(),
		},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runEnroll(c.Context, globals(c), enrollOptions{TokenFile: c.String("token-file"), EnrollOptions: client.EnrollOptions{Fleet: c.String("fleet"), Token: c.String("token"),
				Enrollee:     wire.Enrollee{Email: c.String("email"), Name: c.String("name")},
				Instrument:   wire.Instrument{Model: c.String("instrument-model"), ID: c.String("instrument-id"), Serial: c.String("serial")},
				AgentVersion: version, NewDevice: c.Bool("new-device")}, JSON: c.Bool("json"), Args: c.Args().Slice()})
		},
	}
}

// enrollOptions are bcagent enroll's flags.
type enrollOptions struct {
	client.EnrollOptions
	TokenFile string // --token-file: the token is read from it
	JSON      bool
	Args      []string
}

// maxTokenFile is the most bytes --token-file reads: a token is 36.
const maxTokenFile = 4 << 10

func runEnroll(ctx context.Context, g *globalOptions, o enrollOptions) error {
	if err := cliutil.Required([]string{"fleet", "email", "name", "instrument-model", "instrument-id", "serial"},
		o.Fleet, o.Enrollee.Email, o.Enrollee.Name, o.Instrument.Model, o.Instrument.ID, o.Instrument.Serial); err != nil {
		return err
	}
	switch {
	case o.Token != "" && o.TokenFile != "":
		return cliutil.Usagef("token-file", "--token and --token-file: give one of them")
	case o.TokenFile != "":
		tok, err := readTokenFile(o.TokenFile)
		if err != nil {
			return err
		}
		o.Token = tok
	case o.Token == "":
		return cliutil.Usagef("token", "--token or --token-file is required")
	}
	return withAgent(ctx, g, o.Args, func(a *client.Agent) error {
		fs, err := a.Enroll(ctx, o.EnrollOptions)
		if err != nil {
			return err
		}
		if o.JSON {
			return printJSON(g.Stdout, fs)
		}
		fmt.Fprintf(g.Stdout, "enrolled as device %s of site %s at %s; the agent reports every poll cycle (bcagent status shows the last report)\n",
			esc(fs.DeviceID), esc(fs.Site), esc(fs.URL))
		return nil
	})
}

// readTokenFile is the token in path: its one line, without the line end
// and surrounding blanks.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", cliutil.Usagef("token-file", "--token-file %s: %v", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", cliutil.Usagef("token-file", "--token-file %s: %v", path, err)
	}
	if len(b) > maxTokenFile {
		return "", cliutil.Usagef("token-file", "--token-file %s is larger than %d bytes: want the token alone", path, maxTokenFile)
	}
	tok := strings.TrimSpace(decodeTokenFile(b))
	switch {
	case tok == "":
		return "", cliutil.Usagef("token-file", "--token-file %s is empty: want the token on its one line", path)
	case strings.ContainsAny(tok, "\r\n"):
		return "", cliutil.Usagef("token-file", "--token-file %s has more than one line: want the token alone", path)
	}
	return tok, nil
}

// decodeTokenFile is the text of a token file as Windows tools write it
// too: UTF-8 with or without a byte order mark, or UTF-16 with one
// (PowerShell 5's Out-File).
func decodeTokenFile(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0xef, 0xbb, 0xbf}):
		return string(b[3:])
	case len(b)%2 == 0 && (bytes.HasPrefix(b, []byte{0xff, 0xfe}) || bytes.HasPrefix(b, []byte{0xfe, 0xff})):
		u := make([]uint16, 0, len(b)/2-1)
		for i := 2; i < len(b); i += 2 {
			if b[0] == 0xff {
				u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
			} else {
				u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
			}
		}
		return string(utf16.Decode(u))
	}
	return string(b)
}

func rotateKeyCommand() *cli.Command {
	return &cli.Command{
		Name:         "rotate-key",
		Usage:        "replace this PC's fleet key with a new one (same device ID; no token needed)",
		Flags:        []cli.Flag{jsonFlag()},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runRotateKey(c.Context, globals(c), c.Bool("json"), c.Args().Slice())
		},
	}
}

func runRotateKey(ctx context.Context, g *globalOptions, asJSON bool, args []string) error {
	return withAgent(ctx, g, args, func(a *client.Agent) error {
		fs, err := a.RotateKey(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(g.Stdout, fs)
		}
		fmt.Fprintf(g.Stdout, "device %s has a new key; the old one is retired at %s\n", esc(fs.DeviceID), esc(fs.URL))
		return nil
	})
}

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:         "report",
		Usage:        "send this cycle's status report to the fleet service now (the service does it every poll)",
		Flags:        []cli.Flag{jsonFlag()},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runReport(c.Context, globals(c), c.Bool("json"), c.Args().Slice())
		},
	}
}

func runReport(ctx context.Context, g *globalOptions, asJSON bool, args []string) error {
	return withAgent(ctx, g, args, func(a *client.Agent) error {
		res, err := a.Report(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(g.Stdout, res)
		}
		switch {
		case !res.Enrolled:
			return cliutil.Usagef("", "this PC is not enrolled with a fleet service (bcagent enroll)")
		case res.Heartbeat:
			fmt.Fprintf(g.Stdout, "sent a heartbeat (nothing changed since the last full report)\n")
		default:
			fmt.Fprintf(g.Stdout, "sent %d report(s)\n", res.Sent)
		}
		return nil
	})
}
