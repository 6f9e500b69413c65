package cliutil

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// Man writes app's manual page (roff, section 1) from its command tree:
// the global options, then every command with its usage, description and
// options, each option with its default and environment variables, then
// the exit codes of docs/design.md. Its date is SOURCE_DATE_EPOCH's, so
// that a release build writes the same bytes each time, and none without it.
func Man(w io.Writer, app *cli.App) error {
	var b strings.Builder
	date := ""
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970: %w", s, err)
		}
		date = time.Unix(sec, 0).UTC().Format("2006-01-02")
	}
	up := strings.ToUpper(app.Name)
	fmt.Fprintf(&b, ".\\\" %s(1), written by `%s man` from its command tree.\n", app.Name, app.Name)
	fmt.Fprintf(&b, ".TH %s 1 %s %s \"User Commands\"\n", roffArg(up), roffArg(date), roffArg(app.Name+" "+app.Version))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", roff(app.Name), roff(app.Usage))
	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]\n", roff(app.Name))
	if app.Description != "" {
		b.WriteString(".SH DESCRIPTION\n")
		manText(&b, app.Description)
	}
	ns := nodes(app)
	b.WriteString(".SH GLOBAL OPTIONS\n")
	b.WriteString("Global options may be given before or after the command.\n")
	manFlags(&b, ns[0].flags)
	b.WriteString(".SH COMMANDS\n")
	for _, n := range ns[1:] {
		full := app.Name + " " + strings.Join(n.path, " ")
		fmt.Fprintf(&b, ".SS %s\n", roffArg(full))
		syn := "\\fB" + roff(full) + "\\fR"
		if len(n.subs) > 0 {
			syn += " \\fICOMMAND\\fR"
		}
		if len(n.flags) > 1 {
			syn += " [\\fIOPTIONS\\fR]"
		}
		if n.cmd.ArgsUsage != "" {
			syn += " " + roff(n.cmd.ArgsUsage)
		}
		b.WriteString(syn + "\n.br\n")
		if len(n.cmd.Aliases) > 0 {
			fmt.Fprintf(&b, "Also: %s.\n.br\n", roff(strings.Join(n.cmd.Aliases, ", ")))
		}
		manText(&b, n.cmd.Usage)
		if n.cmd.Description != "" {
			b.WriteString(".PP\n")
			manText(&b, n.cmd.Description)
		}
		if len(n.subs) > 0 {
			var names []string
			for _, s := range n.subs {
				names = append(names, s.Name)
			}
			fmt.Fprintf(&b, ".PP\nCommands: %s.\n", roff(strings.Join(names, ", ")))
		}
		manFlags(&b, n.flags)
	}
	b.WriteString(`.SH EXIT STATUS
.TP
.B 0
success (nothing to do is success)
.TP
.B 1
operational failure (network, disk, configuration)
.TP
.B 2
usage error
.TP
.B 3
verification failure (TUF or code signing: a possible attack)
.TP
.B 4
a person must authorize a feature first (nothing was activated)
`)
	fmt.Fprintf(&b, ".SH SEE ALSO\nThe documentation of bcupdate: docs/operations.md and docs/design.md; \\fB%s completion\\fR for shell completion.\n", roff(app.Name))
	_, err := io.WriteString(w, b.String())
	return err
}

func manFlags(b *strings.Builder, flags []cli.Flag) {
	for _, f := range flags {
		ph, usage := flagUsage(f)
		var words []string
		for _, w := range flagWords(f) {
			s := "\\fB" + roff(w) + "\\fR"
			if ph != "" {
				s += " \\fI" + roff(ph) + "\\fR"
			}
			words = append(words, s)
		}
		fmt.Fprintf(b, ".TP\n%s\n", strings.Join(words, ", "))
		var extra []string
		if d := flagDefault(f); d != "" {
			extra = append(extra, "default: "+d)
		}
		if env := flagEnv(f); len(env) > 0 {
			extra = append(extra, "environment: "+strings.Join(env, ", "))
		}
		if len(extra) > 0 {
			usage += " (" + strings.Join(extra, "; ") + ")"
		}
		manText(b, usage)
	}
}

// manText writes text as roff lines: a line that would start with a
// control character is escaped.
func manText(b *strings.Builder, text string) {
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		line = roff(strings.TrimRight(line, " \t"))
		if line == "" {
			b.WriteString(".PP\n")
			continue
		}
		b.WriteString(line + "\n")
	}
}

// roff escapes s for running text: backslashes, hyphens (else a
// hyphenation point, not the ASCII minus a flag is typed with) and a
// leading period or apostrophe.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffArg is s as one quoted argument of a request.
func roffArg(s string) string {
	return `"` + strings.ReplaceAll(roff(s), `"`, `\(dq`) + `"`
}
