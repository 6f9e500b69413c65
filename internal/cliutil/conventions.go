package cliutil

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/suggest"
)

// The command-line conventions both programs keep (those of gh and
// restic): `help` is accepted where --help is, a global flag may come
// after the command, a mistyped command or flag gets a suggestion,
// required flags say so in --help and are reported all at once.

// Required is the usage error naming every flag in names whose value (in
// the same order in values) is empty, all at once.
func Required(names []string, values ...string) error {
	var missing []string
	for i, n := range names {
		if values[i] == "" {
			missing = append(missing, "--"+n)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return Usagef(names[slices.IndexFunc(names, func(n string) bool { return "--"+n == missing[0] })], "%s is required", missing[0])
	}
	first := strings.TrimPrefix(missing[0], "--")
	return Usagef(first, "%s and %s are required", strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1])
}

// RequiredMark ends the usage of a required flag in --help.
const RequiredMark = "(required)"

// Req marks f as required in --help (the command's run function checks
// it, with Required, so that every missing flag is named at once).
func Req(f cli.Flag) cli.Flag {
	add := func(u *string) { *u = strings.TrimSpace(*u + " " + RequiredMark) }
	switch f := f.(type) {
	case *cli.StringFlag:
		add(&f.Usage)
	case *cli.StringSliceFlag:
		add(&f.Usage)
	case *cli.IntFlag:
		add(&f.Usage)
	case *cli.Int64Flag:
		add(&f.Usage)
	case *cli.DurationFlag:
		add(&f.Usage)
	case *cli.BoolFlag:
		add(&f.Usage)
	default:
		panic(fmt.Sprintf("cliutil.Req: flag type %T", f))
	}
	return f
}

// Suggest is suggest.Closest: the candidate name was most likely meant to be.
func Suggest(name string, candidates []string) string { return suggest.Closest(name, candidates) }

// commandNames are the names and aliases of cmds that people may type.
func commandNames(cmds []*cli.Command) []string {
	var out []string
	for _, c := range cmds {
		if !c.Hidden {
			out = append(out, c.Names()...)
		}
	}
	return out
}

// flagNames are the long names of flags, with their dashes.
func flagNames(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		for _, n := range f.Names() {
			out = append(out, "--"+n)
		}
	}
	return out
}

func takesValue(f cli.Flag) bool {
	if d, ok := f.(cli.DocGenerationFlag); ok {
		return d.TakesValue()
	}
	return false
}

// findFlag is the flag of flags named name (without dashes), or nil.
func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// splitFlag reads "--name", "-name" or "--name=value".
func splitFlag(arg string) (name string, hasValue, ok bool) {
	if len(arg) < 2 || arg[0] != '-' || arg == "--" {
		return "", false, false
	}
	name = strings.TrimLeft(arg, "-")
	name, _, hasValue = strings.Cut(name, "=")
	return name, hasValue, name != ""
}

// normalize rewrites args to what urfave/cli parses: `help [COMMAND…]` as
// `[COMMAND…] --help`, a global flag given after the command (and not
// one of the command's own) moved before it, and flags given after a
// command's arguments (`rollout status C V --db X`) moved before the
// arguments, since urfave/cli stops at the first argument. Nothing after
// "--" moves.
func normalize(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	var moved, rest, pos, tail []string
	cmds, flags := app.Commands, app.Flags
	var path []*cli.Command
	help := false
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			tail = args[i:]
			break
		}
		if name, hasValue, ok := splitFlag(a); ok && (len(pos) == 0 || findFlag(flags, name) != nil || findFlag(app.Flags, name) != nil) {
			// (After an argument, only a known flag is one: "-1" is a value.)
			own := findFlag(flags, name)
			if own == nil && len(path) > 0 {
				if g := findFlag(app.Flags, name); g != nil {
					moved = append(moved, a)
					if takesValue(g) && !hasValue && i+1 < len(args) {
						moved = append(moved, args[i+1])
						i++
					}
					continue
				}
			}
			rest = append(rest, a)
			if own != nil && takesValue(own) && !hasValue && i+1 < len(args) {
				rest = append(rest, args[i+1])
				i++
			}
			continue
		}
		if a == "help" && !help && findCommand(cmds, a) == nil && cmds != nil {
			help = true
			continue
		}
		if c := findCommand(cmds, a); c != nil {
			rest = append(rest, a)
			path = append(path, c)
			cmds, flags = c.Subcommands, c.Flags
		} else {
			pos = append(pos, a)
			cmds = nil // an argument: no more commands below
		}
	}
	out = append(append(append(append(out, moved...), rest...), pos...), tail...)
	if help {
		out = append(out, "--help")
	}
	return out
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if slices.Contains(c.Names(), name) {
			return c
		}
	}
	return nil
}

var needsArgument = regexp.MustCompile(`^flag needs an argument: -+(.+)$`)

// helpName is how the command of c is typed ("bcpublish release add").
func helpName(c *cli.Context) string {
	if c.Command != nil && c.Command.Name != "" {
		return c.Command.HelpName
	}
	return c.App.Name
}

var undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)

// OnUsageError makes urfave/cli's complaint about the command line (an
// unknown flag, a value that does not parse) a usage error in our words:
// an unknown flag names the command and the flag it most likely meant.
// Every command sets it.
func OnUsageError(c *cli.Context, err error, _ bool) error {
	if m := needsArgument.FindStringSubmatch(err.Error()); m != nil {
		return Usagef(m[1], "--%s needs a value (see %s --help)", m[1], helpName(c))
	}
	m := undefinedFlag.FindStringSubmatch(err.Error())
	if m == nil {
		return usage("", err)
	}
	where := c.App.Name
	var flags []cli.Flag
	if c.Command != nil && c.Command.Name != "" {
		where = c.Command.HelpName
		flags = c.Command.Flags
	} else {
		flags = c.App.Flags
	}
	msg := fmt.Sprintf("unknown flag --%s for %s", m[1], where)
	if s := Suggest("--"+m[1], append(flagNames(flags), "--help")); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	return Usagef(m[1], "%s (see %s --help)", msg, where)
}
