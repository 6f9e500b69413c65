package cli

// This file is not part of urfave/cli v2.27.7: it replaces the execution of
// the help templates with text/template (see printHelpCustom and README.md
// beside this file). Each function below is one of upstream's templates,
// named after it and written out in Go; the comment above each is the
// template it renders. Calls go through the same methods and fields the
// templates use, in the same order, and values are printed as text/template
// prints them (fmt.Fprint for {{$e}}), so the output is the same bytes.

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// helpRenderer writes help to w; wrapAt is the width the "wrap" template
// function wraps at.
type helpRenderer struct {
	w      io.Writer
	wrapAt int
}

func (r *helpRenderer) str(s string) { _, _ = io.WriteString(r.w, s) }

func (r *helpRenderer) wrap(input string, offset int) string {
	return wrap(input, offset, r.wrapAt)
}

// renderHelp writes the help that templ, one of the built-in layouts,
// gives for data. It reports false where the template would have stopped
// with an error: a method or field of data that panics (a nil *Command, or
// a command that was never set up, as in "app help cmd" for a command with
// subcommands). text/template recovers such a panic and upstream then
// returns without flushing; so does this, after writing what the template
// had written by then, since it writes in the template's order.
func renderHelp(w io.Writer, templ string, data interface{}, wrapAt int) (ok bool) {
	r := &helpRenderer{w: w, wrapAt: wrapAt}
	defer func() {
		if err := recover(); err != nil {
			ok = false
			if os.Getenv("CLI_TEMPLATE_ERROR_DEBUG") != "" {
				_, _ = fmt.Fprintf(ErrWriter, "CLI TEMPLATE ERROR: %v\n", err)
			}
		}
	}()
	switch d := data.(type) {
	case *App:
		if templ != appHelpLayout {
			customTemplateNote()
		}
		r.app(d)
		return true
	case *Command:
		switch templ {
		case commandHelpLayout, subcommandHelpLayout:
		default:
			customTemplateNote()
			templ = commandHelpLayout
			if d != nil && len(d.Subcommands) > 0 {
				templ = subcommandHelpLayout
			}
		}
		r.command(d, templ == subcommandHelpLayout)
		return true
	}
	customTemplateNote()
	return false
}

func customTemplateNote() {
	_, _ = fmt.Fprintln(ErrWriter, "cli: custom help templates are not supported by this copy of urfave/cli (internal/third_party/urfave-cli); showing the built-in help")
}

// app renders AppHelpTemplate:
//
//	NAME:
//	   {{template "helpNameTemplate" .}}
//
//	USAGE:
//	   {{if .UsageText}}{{wrap .UsageText 3}}{{else}}{{.HelpName}} {{if .VisibleFlags}}[global options]{{end}}{{if .Commands}} command [command options]{{end}}{{if .ArgsUsage}} {{.ArgsUsage}}{{else}}{{if .Args}} [arguments...]{{end}}{{end}}{{end}}{{if .Version}}{{if not .HideVersion}}
//
//	VERSION:
//	   {{.Version}}{{end}}{{end}}{{if .Description}}
//
//	DESCRIPTION:
//	   {{template "descriptionTemplate" .}}{{end}}
//	{{- if len .Authors}}
//
//	AUTHOR{{template "authorsTemplate" .}}{{end}}{{if .VisibleCommands}}
//
//	COMMANDS:{{template "visibleCommandCategoryTemplate" .}}{{end}}{{if .VisibleFlagCategories}}
//
//	GLOBAL OPTIONS:{{template "visibleFlagCategoryTemplate" .}}{{else if .VisibleFlags}}
//
//	GLOBAL OPTIONS:{{template "visibleFlagTemplate" .}}{{end}}{{if .Copyright}}
//
//	COPYRIGHT:
//	   {{template "copyrightTemplate" .}}{{end}}
func (r *helpRenderer) app(a *App) {
	r.str("NAME:\n   ")
	r.helpName(a.HelpName, a.Usage)
	r.str("\n\nUSAGE:\n   ")
	if a.UsageText != "" {
		r.str(r.wrap(a.UsageText, 3))
	} else {
		r.str(a.HelpName)
		r.str(" ")
		if len(a.VisibleFlags()) > 0 {
			r.str("[global options]")
		}
		if len(a.Commands) > 0 {
			r.str(" command [command options]")
		}
		if a.ArgsUsage != "" {
			r.str(" ")
			r.str(a.ArgsUsage)
		} else if a.Args {
			r.str(" [arguments...]")
		}
	}
	if a.Version != "" && !a.HideVersion {
		r.str("\n\nVERSION:\n   ")
		r.str(a.Version)
	}
	if a.Description != "" {
		r.str("\n\nDESCRIPTION:\n   ")
		r.str(r.wrap(a.Description, 3))
	}
	// The newline before {{- if len .Authors}} is trimmed.
	if len(a.Authors) != 0 {
		r.str("\n\nAUTHOR")
		r.authors(a.Authors)
	}
	if len(a.VisibleCommands()) > 0 {
		r.str("\n\nCOMMANDS:")
		r.visibleCommandCategories(a.VisibleCategories())
	}
	if cats := a.VisibleFlagCategories(); len(cats) > 0 {
		r.str("\n\nGLOBAL OPTIONS:")
		r.visibleFlagCategories(cats)
	} else if flags := a.VisibleFlags(); len(flags) > 0 {
		r.str("\n\nGLOBAL OPTIONS:")
		r.visibleFlags(flags)
	}
	if a.Copyright != "" {
		r.str("\n\nCOPYRIGHT:\n   ")
		r.str(r.wrap(a.Copyright, 3))
	}
	r.str("\n")
}

// command renders CommandHelpTemplate or, with sub, SubcommandHelpTemplate
// (which differs only in listing the subcommands):
//
//	NAME:
//	   {{template "helpNameTemplate" .}}
//
//	USAGE:
//	   {{template "usageTemplate" .}}{{if .Category}}
//
//	CATEGORY:
//	   {{.Category}}{{end}}{{if .Description}}
//
//	DESCRIPTION:
//	   {{template "descriptionTemplate" .}}{{end}}{{if .VisibleCommands}}
//
//	COMMANDS:{{template "visibleCommandCategoryTemplate" .}}{{end}}{{if .VisibleFlagCategories}}
//
//	OPTIONS:{{template "visibleFlagCategoryTemplate" .}}{{else if .VisibleFlags}}
//
//	OPTIONS:{{template "visibleFlagTemplate" .}}{{end}}
func (r *helpRenderer) command(c *Command, sub bool) {
	r.str("NAME:\n   ")
	r.helpName(c.HelpName, c.Usage)
	r.str("\n\nUSAGE:\n   ")
	r.usage(c)
	if c.Category != "" {
		r.str("\n\nCATEGORY:\n   ")
		r.str(c.Category)
	}
	if c.Description != "" {
		r.str("\n\nDESCRIPTION:\n   ")
		r.str(r.wrap(c.Description, 3))
	}
	if sub && len(c.VisibleCommands()) > 0 {
		r.str("\n\nCOMMANDS:")
		r.visibleCommandCategories(c.VisibleCategories())
	}
	if cats := c.VisibleFlagCategories(); len(cats) > 0 {
		r.str("\n\nOPTIONS:")
		r.visibleFlagCategories(cats)
	} else if flags := c.VisibleFlags(); len(flags) > 0 {
		r.str("\n\nOPTIONS:")
		r.visibleFlags(flags)
	}
	r.str("\n")
}

// helpName renders helpNameTemplate:
//
//	{{$v := offset .HelpName 6}}{{wrap .HelpName 3}}{{if .Usage}} - {{wrap .Usage $v}}{{end}}
func (r *helpRenderer) helpName(helpName, usage string) {
	v := offset(helpName, 6)
	r.str(r.wrap(helpName, 3))
	if usage != "" {
		r.str(" - ")
		r.str(r.wrap(usage, v))
	}
}

// usage renders usageTemplate:
//
//	{{if .UsageText}}{{wrap .UsageText 3}}{{else}}{{.HelpName}}{{if .VisibleFlags}} [command options]{{end}}{{if .ArgsUsage}} {{.ArgsUsage}}{{else}}{{if .Args}} [arguments...]{{end}}{{end}}{{end}}
func (r *helpRenderer) usage(c *Command) {
	if c.UsageText != "" {
		r.str(r.wrap(c.UsageText, 3))
		return
	}
	r.str(c.HelpName)
	if len(c.VisibleFlags()) > 0 {
		r.str(" [command options]")
	}
	if c.ArgsUsage != "" {
		r.str(" ")
		r.str(c.ArgsUsage)
	} else if c.Args {
		r.str(" [arguments...]")
	}
}

// authors renders authorsTemplate:
//
//	{{with $length := len .Authors}}{{if ne 1 $length}}S{{end}}{{end}}:
//	   {{range $index, $author := .Authors}}{{if $index}}
//	   {{end}}{{$author}}{{end}}
func (r *helpRenderer) authors(authors []*Author) {
	if n := len(authors); n != 0 && n != 1 {
		r.str("S")
	}
	r.str(":\n   ")
	for i, a := range authors {
		if i != 0 {
			r.str("\n   ")
		}
		_, _ = fmt.Fprint(r.w, a)
	}
}

// visibleCommandCategories renders visibleCommandCategoryTemplate:
//
//	{{range .VisibleCategories}}{{if .Name}}
//	   {{.Name}}:{{range .VisibleCommands}}
//	     {{join .Names ", "}}{{"\t"}}{{.Usage}}{{end}}{{else}}{{template "visibleCommandTemplate" .}}{{end}}{{end}}
func (r *helpRenderer) visibleCommandCategories(cats []CommandCategory) {
	for _, cat := range cats {
		if name := cat.Name(); name != "" {
			r.str("\n   ")
			r.str(name)
			r.str(":")
			for _, c := range cat.VisibleCommands() {
				r.str("\n     ")
				r.str(strings.Join(c.Names(), ", "))
				r.str("\t")
				r.str(c.Usage)
			}
		} else {
			r.visibleCommands(cat.VisibleCommands())
		}
	}
}

// visibleCommands renders visibleCommandTemplate:
//
//	{{ $cv := offsetCommands .VisibleCommands 5}}{{range .VisibleCommands}}
//	   {{$s := join .Names ", "}}{{$s}}{{ $sp := subtract $cv (offset $s 3) }}{{ indent $sp ""}}{{wrap .Usage $cv}}{{end}}
func (r *helpRenderer) visibleCommands(cmds []*Command) {
	cv := offsetCommands(cmds, 5)
	for _, c := range cmds {
		s := strings.Join(c.Names(), ", ")
		r.str("\n   ")
		r.str(s)
		r.str(indent(subtract(cv, offset(s, 3)), ""))
		r.str(r.wrap(c.Usage, cv))
	}
}

// visibleFlagCategories renders visibleFlagCategoryTemplate:
//
//	{{range .VisibleFlagCategories}}
//	   {{if .Name}}{{.Name}}
//
//	   {{end}}{{$flglen := len .Flags}}{{range $i, $e := .Flags}}{{if eq (subtract $flglen $i) 1}}{{$e}}
//	{{else}}{{$e}}
//	   {{end}}{{end}}{{end}}
func (r *helpRenderer) visibleFlagCategories(cats []VisibleFlagCategory) {
	for _, cat := range cats {
		r.str("\n   ")
		if name := cat.Name(); name != "" {
			r.str(name)
			r.str("\n\n   ")
		}
		flags := cat.Flags()
		for i, e := range flags {
			_, _ = fmt.Fprint(r.w, e)
			if subtract(len(flags), i) == 1 {
				r.str("\n")
			} else {
				r.str("\n   ")
			}
		}
	}
}

// visibleFlags renders visibleFlagTemplate:
//
//	{{range $i, $e := .VisibleFlags}}
//	   {{wrap $e.String 6}}{{end}}
func (r *helpRenderer) visibleFlags(flags []Flag) {
	for _, e := range flags {
		r.str("\n   ")
		r.str(r.wrap(e.String(), 6))
	}
}
