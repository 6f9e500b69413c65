package clitest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// newShowcase is an app that uses every part of urfave/cli's help
// templates, the programs' commands being plainer: a version, authors, a
// copyright, categories of commands and of flags, aliases, hidden commands
// and flags, usage text, argument usage, multi-line and long descriptions.
func newShowcase(authors int) *cli.App {
	long := strings.Repeat("a rather long usage line that goes on ", 8)
	app := &cli.App{
		Name:        "showcase",
		Usage:       "show every part of the help",
		Version:     "1.2.3",
		Description: "first line\n\nthird line, after an empty one\n" + long,
		Copyright:   "(c) the authors\nall rights reserved",
		ArgsUsage:   "[FILE...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "read `FILE`", Value: "x.json", EnvVars: []string{"SHOWCASE_CONFIG"}},
			&cli.BoolFlag{Name: "verbose", Usage: "say more"},
			&cli.IntFlag{Name: "secret", Hidden: true},
		},
		Commands: []*cli.Command{
			{Name: "plain", Aliases: []string{"p", "pl"}, Usage: "a command with no flags"},
			{Name: "args", Usage: "a command with arguments", Args: true, Description: "takes arguments"},
			{Name: "texted", Usage: "a command with usage text", UsageText: "showcase texted [--n N] NAME\nshowcase texted --all", Flags: []cli.Flag{&cli.IntFlag{Name: "n", Usage: "how `many`"}}},
			{Name: "hidden", Usage: "never listed", Hidden: true},
			{Name: "alpha", Category: "group one", Usage: "first of a category", ArgsUsage: "ID",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "out", Category: "output", Usage: "write to `FILE`"},
					&cli.BoolFlag{Name: "json", Category: "output", Usage: "as JSON"},
					&cli.DurationFlag{Name: "timeout", Usage: "give up after `D`", Value: time.Minute},
					&cli.StringSliceFlag{Name: "tag", Category: "selection", Usage: "only `TAG`s"},
				}},
			{Name: "beta", Category: "group one", Usage: long},
			{Name: "parent", Usage: "a command with subcommands", Description: "holds two", Subcommands: []*cli.Command{
				{Name: "one", Usage: "the first", Flags: []cli.Flag{&cli.StringFlag{Name: "name", Required: true, Usage: "the `NAME`"}}},
				{Name: "two", Aliases: []string{"2"}, Usage: "the second", Category: "more"},
				{Name: "ghost", Hidden: true},
			}},
		},
	}
	for i := 0; i < authors; i++ {
		app.Authors = append(app.Authors, &cli.Author{Name: "Author " + string(rune('A'+i)), Email: "a@example.org"})
	}
	return app
}

// TestHelpParity walks the showcase's help in every form urfave/cli prints
// it and holds each page to upstream's text/template rendering.
func TestHelpParity(t *testing.T) {
	cases := [][]string{
		{"--help"}, {"-h"}, {"help"}, {}, {"help", "alpha"}, {"alpha", "--help"},
		{"plain", "-h"}, {"args", "--help"}, {"texted", "--help"}, {"beta", "--help"},
		{"parent"}, {"parent", "--help"}, {"parent", "help"}, {"parent", "help", "one"},
		{"parent", "one", "--help"}, {"help", "parent"}, {"parent", "two", "-h"},
	}
	for _, authors := range []int{0, 1, 2} {
		for _, args := range cases {
			stop := HelpParity(t)
			app := newShowcase(authors)
			var out, errOut bytes.Buffer
			app.Writer, app.ErrWriter = &out, &errOut
			app.Action = func(c *cli.Context) error { return cli.ShowAppHelp(c) }
			if err := app.Run(append([]string{"showcase"}, args...)); err != nil {
				t.Errorf("showcase %v: %v", args, err)
			}
			stop()
			if out.Len() == 0 {
				t.Errorf("showcase %v printed no help", args)
			}
		}
	}
}

// TestHelpParityBare: an app with nothing but a name, and one whose
// version is hidden and whose commands have no usage.
func TestHelpParityBare(t *testing.T) {
	defer HelpParity(t)()
	for _, app := range []*cli.App{
		{Name: "bare", HideHelp: true, HideHelpCommand: true},
		{Name: "quiet", Version: "9", HideVersion: true, UsageText: "quiet [x]", Commands: []*cli.Command{{Name: "a"}, {Name: "bb", Aliases: []string{"b"}}}},
	} {
		var out bytes.Buffer
		app.Writer = &out
		app.Action = func(c *cli.Context) error { return cli.ShowAppHelp(c) }
		if err := app.Run([]string{app.Name}); err != nil {
			t.Errorf("%s: %v", app.Name, err)
		}
	}
}

// TestHelpParityWrapAt: HelpPrinterCustom's "wrapAt" narrows the wrap, as
// upstream's does.
func TestHelpParityWrapAt(t *testing.T) {
	app := newShowcase(2)
	app.Writer = &bytes.Buffer{}
	app.Setup()
	funcs := map[string]interface{}{"wrapAt": func() int { return 40 }}
	for _, data := range []interface{}{app, app.Command("alpha"), app.Command("parent")} {
		templ := cli.AppHelpTemplate
		if c, ok := data.(*cli.Command); ok {
			templ = cli.CommandHelpTemplate
			if len(c.Subcommands) > 0 {
				templ = cli.SubcommandHelpTemplate
			}
		}
		var got, want bytes.Buffer
		cli.HelpPrinterCustom(&got, templ, data, funcs)
		templateHelp(&want, templ, data, map[string]interface{}{"wrapAt": func() int { return 40 }})
		if got.String() != want.String() {
			t.Errorf("wrapAt 40, %s: got\n%s\nwant\n%s", helpSubject(data), got.String(), want.String())
		}
		if !strings.Contains(got.String(), "\n") {
			t.Errorf("no output for %s", helpSubject(data))
		}
	}
}
