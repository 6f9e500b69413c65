package clitest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// command is one visible command of an app with what it is typed with.
type command struct {
	path  []string
	subs  []string   // its visible subcommands' names and aliases
	flags []string   // its own flags, as typed ("--json", "-h")
	all   []cli.Flag // its own flags
}

// tree walks app's visible commands (the app itself first, with the
// global flags, --help and --version included) straight from the
// cli.App, not through cliutil's walk, so that the two are checked
// against each other.
func tree(app *cli.App) []command {
	words := func(fl []cli.Flag) []string {
		var out []string
		for _, f := range fl {
			for _, n := range f.Names() {
				if len(n) == 1 {
					out = append(out, "-"+n)
				} else {
					out = append(out, "--"+n)
				}
			}
		}
		return out
	}
	subs := func(cmds []*cli.Command) []string {
		var out []string
		for _, c := range cmds {
			if !c.Hidden && c.Name != "help" {
				out = append(out, c.Names()...)
			}
		}
		return out
	}
	root := command{subs: subs(app.Commands), flags: append(words(app.Flags), "--help", "-h", "--version", "-v"), all: app.Flags}
	out := []command{root}
	var walk func(prefix []string, cmds []*cli.Command)
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			p := append(slices.Clone(prefix), c.Name)
			out = append(out, command{path: p, subs: subs(c.Subcommands), flags: append(words(c.Flags), "--help"), all: c.Flags})
			walk(p, c.Subcommands)
		}
	}
	walk(nil, app.Commands)
	return out
}

// CheckCompletionAndMan runs `completion SHELL` for each shell and `man`,
// and checks that every command and every flag of app (and the global
// flags at every command) is there: the bash and fish scripts by running
// them in bash and fish and asking them to complete each command line,
// the zsh script by zsh's parser and the table it shares with bash, the
// PowerShell script by its tables (no PowerShell here), the man page by
// its sections.
func CheckCompletionAndMan(t *testing.T, app *cli.App, run Run) {
	t.Helper()
	// A shell there is no script for, and bad log flags, are usage
	// errors of one line.
	for _, args := range [][]string{{"completion", "tcsh"}, {"completion"}, {"completion", "bash", "zsh"}, {"--log-format", "xml", "completion", "bash"}, {"--log-level", "loud", "man"}} {
		code, out, errOut := run(args...)
		if code != cliutil.ExitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") {
			t.Errorf("%s %v: exit %d (want %d), stdout %q, stderr %q", app.Name, args, code, cliutil.ExitUsage, out, errOut)
		}
	}
	cmds := tree(app)
	global := cmds[0].flags
	script := map[string]string{}
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, errOut := run("completion", sh)
		if code != 0 || errOut != "" || out == "" {
			t.Fatalf("%s completion %s: exit %d, stderr %q", app.Name, sh, code, errOut)
		}
		script[sh] = out
	}
	dir := t.TempDir()
	for sh, s := range script {
		if err := os.WriteFile(filepath.Join(dir, app.Name+"."+sh), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("man", func(t *testing.T) {
		code, page, errOut := run("man")
		if code != 0 || errOut != "" {
			t.Fatalf("%s man: exit %d, stderr %q", app.Name, code, errOut)
		}
		sections := manSections(page)
		for _, c := range cmds {
			title := "GLOBAL OPTIONS"
			if len(c.path) > 0 {
				title = strings.Join(append([]string{app.Name}, c.path...), " ")
			}
			sec, ok := sections[title]
			if !ok {
				t.Errorf("%s man: no section for %q", app.Name, title)
				continue
			}
			want := c.flags
			if len(c.path) > 0 {
				want = slices.DeleteFunc(slices.Clone(want), func(w string) bool { return w == "-h" })
			}
			for _, f := range want {
				if !strings.Contains(sec, `\fB`+roffDash(f)+`\fR`) {
					t.Errorf("%s man: %q does not document %s", app.Name, title, f)
				}
			}
		}
		if code, out, _ := run("man", "extra"); code != 2 || out != "" {
			t.Errorf("%s man extra: exit %d (want 2), stdout %q", app.Name, code, out)
		}
	})

	t.Run("bash", func(t *testing.T) {
		got := runCompletions(t, "bash", bashDriver(app.Name, filepath.Join(dir, app.Name+".bash"), cmds))
		checkCompletions(t, app.Name, "bash", cmds, global, got)
	})
	t.Run("fish", func(t *testing.T) {
		if testutil.NeedTool(t, "fish") == "" {
			return
		}
		got := runCompletions(t, "fish", fishDriver(app.Name, filepath.Join(dir, app.Name+".fish"), cmds))
		checkCompletions(t, app.Name, "fish", cmds, global, got)
	})
	t.Run("zsh", func(t *testing.T) {
		if testutil.NeedTool(t, "zsh") == "" {
			return
		}
		if out, err := exec.Command("zsh", "-n", filepath.Join(dir, app.Name+".zsh")).CombinedOutput(); err != nil {
			t.Fatalf("zsh -n: %v\n%s", err, out)
		}
		// The zsh script's tables are the bash script's: run them in zsh.
		got := runCompletions(t, "zsh", tableDriver(app.Name, filepath.Join(dir, app.Name+".zsh"), cmds))
		checkCompletions(t, app.Name, "zsh", cmds, global, got)
	})
	t.Run("powershell", func(t *testing.T) {
		got := powershellTables(script["powershell"])
		checkCompletions(t, app.Name, "powershell", cmds, global, got)
	})
}

// A completion result, per command path: the words offered after it
// ("cmds") and with a leading dash ("flags").
type completions map[string]map[string][]string

func checkCompletions(t *testing.T, name, sh string, cmds []command, global []string, got completions) {
	t.Helper()
	for _, c := range cmds {
		p := strings.Join(c.path, " ")
		want := c.flags
		if len(c.path) > 0 {
			for _, g := range global {
				if !slices.Contains(c.flags, g) && g != "-h" {
					want = append(want, g)
				}
			}
		}
		for _, f := range want {
			if !slices.Contains(got[p]["flags"], f) {
				t.Errorf("%s: `%s %s -` does not offer %s (offers %v)", sh, name, p, f, got[p]["flags"])
			}
		}
		for _, s := range c.subs {
			if !slices.Contains(got[p]["cmds"], s) {
				t.Errorf("%s: `%s %s ` does not offer %s (offers %v)", sh, name, p, s, got[p]["cmds"])
			}
		}
	}
}

// runCompletions runs the driver script in shell and reads its lines:
// "@@ PATH|KIND" then one offered word a line.
func runCompletions(t *testing.T, shell, driver string) completions {
	t.Helper()
	cmd := exec.Command(shell)
	cmd.Stdin = strings.NewReader(driver)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("%s: %v\n%s", shell, err, stderr.String())
	}
	got := completions{}
	var p, kind string
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "@@ "); ok {
			p, kind, _ = strings.Cut(rest, "|")
			if got[p] == nil {
				got[p] = map[string][]string{}
			}
			continue
		}
		if w, _, _ := strings.Cut(line, "\t"); w != "" && got[p] != nil {
			got[p][kind] = append(got[p][kind], w)
		}
	}
	return got
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// bashDriver sources the script and calls its completion function for
// `NAME PATH… -` and `NAME PATH… `, as bash would on Tab.
func bashDriver(name, file string, cmds []command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "source %s || exit 1\n", shQuote(file))
	for _, c := range cmds {
		p := strings.Join(c.path, " ")
		for _, k := range []struct{ kind, cur string }{{"flags", "-"}, {"cmds", ""}} {
			words := append(append([]string{name}, c.path...), k.cur)
			q := make([]string, len(words))
			for i, w := range words {
				q[i] = shQuote(w)
			}
			fmt.Fprintf(&b, "echo %s\nCOMP_WORDS=(%s); COMP_CWORD=%d; COMPREPLY=()\n_%s\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n",
				shQuote("@@ "+p+"|"+k.kind), strings.Join(q, " "), len(words)-1, strings.ReplaceAll(name, "-", "_"))
		}
	}
	return b.String()
}

// tableDriver sources the zsh script's functions (without its compdef
// line: there is no completion system in a script) and prints its tables.
func tableDriver(name, file string, cmds []command) string {
	fn := strings.ReplaceAll(name, "-", "_")
	var b strings.Builder
	fmt.Fprintf(&b, "compdef() { :; }\nsource %s || exit 1\n", shQuote(file))
	for _, c := range cmds {
		p := strings.Join(c.path, " ")
		fmt.Fprintf(&b, "echo %s\nprintf '%%s\\n' ${=$(__%s_flags %s)}\n", shQuote("@@ "+p+"|flags"), fn, shQuote(p))
		fmt.Fprintf(&b, "echo %s\nprintf '%%s\\n' ${=$(__%s_cmds %s)}\n", shQuote("@@ "+p+"|cmds"), fn, shQuote(p))
	}
	return b.String()
}

// fishDriver sources the script and asks fish to complete each line.
func fishDriver(name, file string, cmds []command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "source %s; or exit 1\n", shQuote(file))
	for _, c := range cmds {
		p := strings.Join(c.path, " ")
		line := strings.TrimSpace(name + " " + p)
		fmt.Fprintf(&b, "echo %s\ncomplete -C %s\n", shQuote("@@ "+p+"|flags"), shQuote(line+" -"))
		fmt.Fprintf(&b, "echo %s\ncomplete -C %s\n", shQuote("@@ "+p+"|cmds"), shQuote(line+" "))
	}
	return b.String()
}

// powershellTables reads the $cmds and $flags tables of the PowerShell
// script.
func powershellTables(s string) completions {
	got := completions{}
	kind := ""
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		switch line {
		case "$cmds = @{":
			kind = "cmds"
			continue
		case "$flags = @{":
			kind = "flags"
			continue
		case "}":
			kind = ""
			continue
		}
		if kind == "" {
			continue
		}
		k, v, ok := strings.Cut(line, " = @(")
		if !ok {
			continue
		}
		p := strings.ReplaceAll(strings.Trim(k, "'"), "''", "'")
		if got[p] == nil {
			got[p] = map[string][]string{}
		}
		for _, w := range strings.Split(strings.TrimSuffix(v, ")"), ", ") {
			got[p][kind] = append(got[p][kind], strings.ReplaceAll(strings.Trim(w, "'"), "''", "'"))
		}
	}
	return got
}

// manSections splits a man page at its .SH and .SS titles.
func manSections(page string) map[string]string {
	out := map[string]string{}
	title := ""
	for _, line := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(line, ".SH "); ok {
			title = strings.Trim(rest, `"`)
			continue
		}
		if rest, ok := strings.CutPrefix(line, ".SS "); ok {
			title = strings.ReplaceAll(strings.Trim(rest, `"`), `\-`, "-")
			continue
		}
		out[title] += line + "\n"
	}
	return out
}

func roffDash(s string) string { return strings.ReplaceAll(s, "-", `\-`) }
