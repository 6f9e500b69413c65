// Package cliutil is what bcagent and bcpublish share around their
// command trees: the exit codes (docs/design.md), the usage-error handler
// every command installs, and running the app with the one-line error
// report. Both programs keep their commands, options and run functions in
// cmd/; nothing here knows a command.
package cliutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/errs"
)

// Exit codes, both tools (docs/design.md).
const (
	ExitOK                    = 0
	ExitFailure               = 1
	ExitUsage                 = 2
	ExitVerification          = 3
	ExitAuthorizationRequired = 4
)

// ExitCode maps err to the exit code: a missing authorization before a
// verification failure before a usage error (errs kinds, or one of
// usage, errors a program also counts as usage errors), else failure.
func ExitCode(err error, usage ...error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errs.ErrAuthorizationRequired):
		return ExitAuthorizationRequired
	case errors.Is(err, errs.ErrVerification):
		return ExitVerification
	case errors.Is(err, errs.ErrUsage):
		return ExitUsage
	}
	for _, u := range usage {
		if errors.Is(err, u) {
			return ExitUsage
		}
	}
	return ExitFailure
}

func usage(flag string, err error) error { return errs.Usage(flag, err) }

// Usagef is errs.Usagef: a usage error about flag.
func Usagef(flag, format string, args ...any) error { return errs.Usagef(flag, format, args...) }

// NoArgs is the usage error for a command that takes no arguments.
func NoArgs(args []string) error {
	if len(args) > 0 {
		return Usagef("", "unexpected argument %q", args[0])
	}
	return nil
}

// Program is how a CLI reports: its name, how it makes a message safe to
// print (nil: as it is), the further errors it counts as usage errors,
// and a hook that may handle an error itself.
type Program struct {
	Name   string
	Escape func(string) string
	Usage  []error
	// Handle, if set, sees every error first; handled, it returns the
	// exit code and nothing is printed.
	Handle func(err error) (code int, handled bool)
}

// Run runs app and returns the exit code. An unknown command and an error
// are reported on stderr in one line, "NAME: message".
func (p Program) Run(ctx context.Context, app *cli.App, args []string, stderr io.Writer) int {
	unknown := false
	app.CommandNotFound = func(c *cli.Context, name string) {
		unknown = true
		where, cmds := p.Name, app.Commands
		if c.Command != nil && c.Command.Name != "" {
			where, cmds = c.Command.HelpName, c.Command.Subcommands
		}
		msg := fmt.Sprintf("unknown command %q for %s", name, where)
		if s := Suggest(name, commandNames(cmds)); s != "" {
			msg += fmt.Sprintf("; did you mean %s %s?", where, s)
		}
		p.Report(stderr, fmt.Errorf("%s (see %s --help)", msg, where))
	}
	err := app.RunContext(ctx, normalize(app, args))
	if err == nil && unknown {
		return ExitUsage
	}
	if err != nil && p.Handle != nil {
		if code, ok := p.Handle(err); ok {
			return code
		}
	}
	if err != nil {
		p.Report(stderr, err)
	}
	return ExitCode(err, p.Usage...)
}

// Report prints err in one line: an error may quote a name, a path or a
// server's message, and a newline in it would forge a line.
func (p Program) Report(stderr io.Writer, err error) {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if p.Escape != nil {
		msg = p.Escape(msg)
	}
	fmt.Fprintf(stderr, "%s: %s\n", p.Name, msg)
}
