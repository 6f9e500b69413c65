package cliutil

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Shells are the shells `completion` writes a script for.
var Shells = []string{"bash", "zsh", "fish", "powershell"}

// Standard adds to app what every program has besides its own commands:
// the log flags (with envPrefix, "BCAGENT"), their check before any
// command runs, and the completion and man commands, which write their
// output from app's command tree as it is when they run. It returns app.
func Standard(app *cli.App, envPrefix string) *cli.App {
	app.Flags = append(app.Flags, LogFlags(envPrefix)...)
	before := app.Before
	app.Before = func(c *cli.Context) error {
		if err := LogOptionsOf(c).Check(); err != nil {
			return err
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
	app.Commands = append(app.Commands, completionCommand(), manCommand())
	return app
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:         "completion",
		Usage:        "print the shell completion script for " + strings.Join(Shells, ", ") + " (docs/operations.md)",
		ArgsUsage:    strings.Join(Shells, "|"),
		OnUsageError: OnUsageError,
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) != 1 {
				return Usagef("", "completion takes one shell: %s", strings.Join(Shells, ", "))
			}
			return Completion(c.App.Writer, c.App, args[0])
		},
	}
}

func manCommand() *cli.Command {
	return &cli.Command{
		Name:         "man",
		Usage:        "print the manual page (roff, section 1), as make man installs it",
		OnUsageError: OnUsageError,
		Action: func(c *cli.Context) error {
			if err := NoArgs(c.Args().Slice()); err != nil {
				return err
			}
			return Man(c.App.Writer, c.App)
		},
	}
}

// node is one command of the tree, as completion and man pages show it.
type node struct {
	path  []string // command names from the app down, empty for the app
	cmd   *cli.Command
	subs  []*cli.Command // visible subcommands
	flags []cli.Flag     // the command's own visible flags
}

// nodes walks app's visible commands, the app itself first.
func nodes(app *cli.App) []node {
	out := []node{{subs: visibleCommands(app.Commands), flags: visibleFlags(appFlags(app))}}
	var walk func(prefix []string, cmds []*cli.Command)
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range visibleCommands(cmds) {
			p := append(slices.Clone(prefix), c.Name)
			out = append(out, node{path: p, cmd: c, subs: visibleCommands(c.Subcommands), flags: visibleFlags(commandFlags(c))})
			walk(p, c.Subcommands)
		}
	}
	walk(nil, app.Commands)
	return out
}

// appFlags are the app's flags with the ones urfave/cli adds: --help and,
// with a version, --version.
func appFlags(app *cli.App) []cli.Flag {
	fl := slices.Clone(app.Flags)
	if !app.HideHelp && cli.HelpFlag != nil && findFlag(fl, cli.HelpFlag.Names()[0]) == nil {
		fl = append(fl, cli.HelpFlag)
	}
	if !app.HideVersion && app.Version != "" && cli.VersionFlag != nil && findFlag(fl, cli.VersionFlag.Names()[0]) == nil {
		fl = append(fl, cli.VersionFlag)
	}
	return fl
}

func commandFlags(c *cli.Command) []cli.Flag {
	fl := slices.Clone(c.Flags)
	if !c.HideHelp && cli.HelpFlag != nil && findFlag(fl, cli.HelpFlag.Names()[0]) == nil {
		fl = append(fl, cli.HelpFlag)
	}
	return fl
}

// visibleCommands are cmds but the hidden ones and urfave/cli's own help
// command, which it adds to a command as that runs (the programs take
// `help` as --help: Program.Run).
func visibleCommands(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			out = append(out, c)
		}
	}
	return out
}

func visibleFlags(flags []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		out = append(out, f)
	}
	return out
}

// flagWords are how f is typed: "--name" for each name, "-n" for a
// one-letter alias.
func flagWords(f cli.Flag) []string {
	var out []string
	for _, n := range f.Names() {
		if len(n) == 1 {
			out = append(out, "-"+n)
		} else {
			out = append(out, "--"+n)
		}
	}
	return out
}

// flagChoices are the values a flag takes, where they are a fixed list.
func flagChoices(f cli.Flag) []string {
	switch f.Names()[0] {
	case "log-format":
		return LogFormats
	case "log-level":
		return LogLevels
	}
	return nil
}

// argChoices are the arguments a command takes, where they are a fixed list.
func argChoices(n node) []string {
	if n.cmd != nil && len(n.path) == 1 && n.cmd.Name == "completion" {
		return Shells
	}
	return nil
}

// flagUsage is f's usage with its placeholder: ("DIR", "agent state DIR").
func flagUsage(f cli.Flag) (placeholder, usage string) {
	d, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return "", ""
	}
	placeholder, usage = unquoteUsage(d.GetUsage())
	if d.TakesValue() && placeholder == "" {
		placeholder = "VALUE"
	}
	if !d.TakesValue() {
		placeholder = ""
	}
	return placeholder, usage
}

// unquoteUsage is urfave/cli's own: the first `quoted` word of usage is
// the placeholder, and the usage without the quotes.
func unquoteUsage(usage string) (string, string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name := usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+2+j:]
}

// flagDefault is f's default as --help shows it, "" for none.
func flagDefault(f cli.Flag) string {
	d, ok := f.(cli.DocGenerationFlag)
	if !ok || !d.TakesValue() {
		return ""
	}
	return d.GetDefaultText()
}

func flagEnv(f cli.Flag) []string {
	if d, ok := f.(cli.DocGenerationFlag); ok {
		return d.GetEnvVars()
	}
	return nil
}

// Completion writes app's completion script for shell.
func Completion(w io.Writer, app *cli.App, shell string) error {
	var s string
	switch shell {
	case "bash":
		s = bashCompletion(app)
	case "zsh":
		s = zshCompletion(app)
	case "fish":
		s = fishCompletion(app)
	case "powershell":
		s = powershellCompletion(app)
	default:
		return Usagef("", "completion: unknown shell %q: want %s", shell, strings.Join(Shells, ", "))
	}
	_, err := fmt.Fprint(w, s)
	return err
}
