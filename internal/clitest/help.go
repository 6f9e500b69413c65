// Package clitest checks, for the tests of both programs, the command-line
// conventions internal/cliutil sets out: every command's --help has one
// default per flag, written "(default: X)", a placeholder that says what
// to give (never urfave/cli's bare "value"), and marks required flags,
// which the command then reports all at once when they are missing.
package clitest

import (
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

// Run runs the program with args and returns its exit code and output.
type Run func(args ...string) (code int, stdout, stderr string)

// Commands lists the path of every command of app ("release", "add"), the
// app itself first (an empty path).
func Commands(app *cli.App) [][]string {
	out := [][]string{{}}
	var walk func(prefix []string, cmds []*cli.Command)
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			p := append(append([]string{}, prefix...), c.Name)
			out = append(out, p)
			walk(p, c.Subcommands)
		}
	}
	walk(nil, app.Commands)
	return out
}

var (
	flagLine    = regexp.MustCompile(`^\s+(--[a-z0-9-]+)(?:, -[a-z])?(?: ([^ ]+))?(?: \[ --[a-z0-9-]+ [^ ]+ \])?\s{2,}(.*)$`)
	badDefault  = regexp.MustCompile(`\(default [^:]`)
	requiredRef = regexp.MustCompile(`--[a-z0-9-]+`)
)

// CheckHelp runs `PATH --help` for every command of app, checks that the
// page is what urfave/cli's own templates give (HelpParity), and checks its
// flag lines; then it runs every command that runs with no flags at all:
// the flags its error calls required must be exactly those --help marks,
// named at once in one line, with exit code 2 (usage). run must keep the
// commands from doing anything real without flags (an empty state
// directory, no repository).
func CheckHelp(t *testing.T, app *cli.App, run Run) {
	t.Helper()
	defer HelpParity(t)()
	for _, path := range Commands(app) {
		name := strings.Join(append([]string{app.Name}, path...), " ")
		code, out, errOut := run(append(append([]string{}, path...), "--help")...)
		if code != 0 || errOut != "" {
			t.Errorf("%s --help: exit %d, stderr %q", name, code, errOut)
			continue
		}
		var required []string
		for _, line := range strings.Split(out, "\n") {
			m := flagLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			flag, placeholder, usage := m[1], m[2], m[3]
			if flag == "--help" {
				continue
			}
			if n := strings.Count(usage, "(default"); n > 1 {
				t.Errorf("%s: %s shows %d defaults: %s", name, flag, n, usage)
			}
			if badDefault.MatchString(usage) {
				t.Errorf("%s: %s writes its default other than \"(default: X)\": %s", name, flag, usage)
			}
			if placeholder == "value" {
				t.Errorf("%s: %s has no placeholder that says what to give (mark one in its usage with backquotes)", name, flag)
			}
			if strings.Contains(usage, cliutil.RequiredMark) || strings.Contains(usage, "(required, ") {
				required = append(required, flag)
			}
		}
		if !leaf(app, path) {
			continue
		}
		// Run with no flags at all: every flag the error calls required
		// must be marked, and every marked one named, in one line.
		code, _, errOut = run(path...)
		var named []string
		if m := requiredErr.FindStringSubmatch(errOut); m != nil {
			named = requiredRef.FindAllString(m[1], -1)
		}
		for _, n := range named {
			if !contains(required, n) {
				t.Errorf("%s: %s is required but --help does not mark it %s", name, n, cliutil.RequiredMark)
			}
		}
		if len(required) == 0 {
			continue
		}
		if code != cliutil.ExitUsage {
			t.Errorf("%s without its required flags %v: exit %d (want %d), stderr %q", name, required, code, cliutil.ExitUsage, errOut)
			continue
		}
		for _, r := range required {
			if !contains(named, r) {
				t.Errorf("%s without its required flags: the error does not name %s: %q", name, r, errOut)
			}
		}
		if strings.Count(errOut, "\n") > 1 {
			t.Errorf("%s: the error is not one line: %q", name, errOut)
		}
	}
}

// requiredErr is the error a command gives without its required flags.
var requiredErr = regexp.MustCompile(`: ((?:--[a-z0-9-]+(?:, | and )?)+) (?:is|are) required`)

// leaf says whether path is a command that runs (no subcommands).
func leaf(app *cli.App, path []string) bool {
	if len(path) == 0 {
		return false
	}
	cmds := app.Commands
	var c *cli.Command
	for _, p := range path {
		c = nil
		for _, cand := range cmds {
			if cand.Name == p {
				c = cand
			}
		}
		if c == nil {
			return false
		}
		cmds = c.Subcommands
	}
	return len(c.Subcommands) == 0
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
