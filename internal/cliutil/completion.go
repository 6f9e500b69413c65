package cliutil

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// The completion scripts are written from the command tree as the program
// runs, never from a list kept by hand. Each shell's script finds the
// command path typed so far (the words that name a command below the one
// before, a flag's value skipped), then offers that command's subcommands,
// or with a leading "-" its flags and the global ones, or for a flag that
// takes a fixed list of values (--log-format) those values, or file names.

// table is what every script needs, per command path ("" for the app,
// "release add").
type table struct {
	paths   []string
	cmds    map[string][]string // subcommand names and aliases, or the fixed arguments
	usages  map[string][]string // each cmds entry's one-line usage
	flags   map[string][]string // the command's flags and the global ones
	values  map[string][]string // those of flags that take a value
	choices map[string][]string // a flag word's fixed values
	leaf    map[string]bool     // a command with no subcommands (its arguments may be files)
	flagOf  map[string]map[string]cli.Flag
}

func newTable(app *cli.App) *table {
	t := &table{cmds: map[string][]string{}, usages: map[string][]string{}, flags: map[string][]string{},
		values: map[string][]string{}, choices: map[string][]string{}, leaf: map[string]bool{}, flagOf: map[string]map[string]cli.Flag{}}
	ns := nodes(app)
	global := ns[0].flags
	for _, n := range ns {
		p := strings.Join(n.path, " ")
		t.paths = append(t.paths, p)
		for _, c := range n.subs {
			for _, name := range c.Names() {
				t.cmds[p] = append(t.cmds[p], name)
				t.usages[p] = append(t.usages[p], c.Usage)
			}
		}
		for _, a := range argChoices(n) {
			t.cmds[p] = append(t.cmds[p], a)
			t.usages[p] = append(t.usages[p], "")
		}
		t.leaf[p] = len(n.subs) == 0
		fl := n.flags
		if len(n.path) > 0 {
			fl = append(slices.Clone(fl), global...)
		}
		t.flagOf[p] = map[string]cli.Flag{}
		for _, f := range fl {
			for _, w := range flagWords(f) {
				if _, dup := t.flagOf[p][w]; dup {
					continue // a command's own flag shadows a global one
				}
				t.flagOf[p][w] = f
				t.flags[p] = append(t.flags[p], w)
				if takesValue(f) {
					t.values[p] = append(t.values[p], w)
					if c := flagChoices(f); c != nil {
						t.choices[w] = c
					}
				}
			}
		}
	}
	return t
}

// shellWord matches what needs no quoting in any of the four shells.
var shellWord = regexp.MustCompile(`^[A-Za-z0-9_.:/@%+-]*$`)

// sq quotes s for sh, bash and zsh.
func sq(s string) string {
	if s != "" && shellWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// caseFunc writes a sh function that prints, for its argument, the words
// of m under that key.
func caseFunc(b *strings.Builder, name string, t *table, m map[string][]string) {
	fmt.Fprintf(b, "%s() {\n  case \"$1\" in\n", name)
	for _, p := range t.paths {
		if len(m[p]) == 0 {
			continue
		}
		fmt.Fprintf(b, "    %s) echo %s ;;\n", sqPath(p), sq(strings.Join(m[p], " ")))
	}
	b.WriteString("  esac\n}\n")
}

func sqPath(p string) string {
	if p == "" {
		return "''"
	}
	return sq(p)
}

// choicesFunc writes a sh function that prints a flag word's values.
func choicesFunc(b *strings.Builder, name string, t *table) {
	fmt.Fprintf(b, "%s() {\n  case \"$1\" in\n", name)
	for _, w := range sortedKeys(t.choices) {
		fmt.Fprintf(b, "    %s) echo %s ;;\n", sq(w), sq(strings.Join(t.choices[w], " ")))
	}
	b.WriteString("  esac\n}\n")
}

func sortedKeys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// fn turns a program name into a shell function name.
func fn(name string) string { return strings.NewReplacer("-", "_", ".", "_").Replace(name) }

// shHelpers are the table's functions for bash and zsh.
func shHelpers(b *strings.Builder, app *cli.App, t *table) {
	n := fn(app.Name)
	caseFunc(b, "__"+n+"_cmds", t, t.cmds)
	caseFunc(b, "__"+n+"_flags", t, t.flags)
	caseFunc(b, "__"+n+"_values", t, t.values)
	choicesFunc(b, "__"+n+"_choices", t)
	leaves := map[string][]string{}
	for p, l := range t.leaf {
		if l {
			leaves[p] = []string{"leaf"}
		}
	}
	caseFunc(b, "__"+n+"_leaf", t, leaves)
}

func bashCompletion(app *cli.App) string {
	t, n := newTable(app), fn(app.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s, written by `%s completion bash` from its command tree.\n", app.Name, app.Name)
	fmt.Fprintf(&b, "# Install: %s completion bash > /usr/share/bash-completion/completions/%s\n", app.Name, app.Name)
	shHelpers(&b, app, t)
	fmt.Fprintf(&b, `_%[1]s() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev= cmdpath= w i
  (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}
  for (( i = 1; i < COMP_CWORD; i++ )); do
    w=${COMP_WORDS[i]}
    case "$w" in
      =) (( i++ )) ;;
      -*) case " $(__%[1]s_values "$cmdpath") " in *" $w "*) [[ ${COMP_WORDS[i+1]} != = ]] && (( i++ )) ;; esac ;;
      *) case " $(__%[1]s_cmds "$cmdpath") " in *" $w "*) cmdpath=${cmdpath:+$cmdpath }$w ;; esac ;;
    esac
  done
  if [[ $cur == = ]]; then cur=; fi
  if [[ $prev == = && $COMP_CWORD -ge 2 ]]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi
  if [[ $prev == -* ]] && case " $(__%[1]s_values "$cmdpath") " in *" $prev "*) true ;; *) false ;; esac; then
    local choices=$(__%[1]s_choices "$prev")
    if [[ -n $choices ]]; then
      COMPREPLY=( $(compgen -W "$choices" -- "$cur") )
    else
      COMPREPLY=( $(compgen -f -- "$cur") )
    fi
    return
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=( $(compgen -W "$(__%[1]s_flags "$cmdpath")" -- "$cur") )
  elif [[ -n $(__%[1]s_cmds "$cmdpath") ]]; then
    COMPREPLY=( $(compgen -W "$(__%[1]s_cmds "$cmdpath")" -- "$cur") )
  elif [[ -n $(__%[1]s_leaf "$cmdpath") ]]; then
    COMPREPLY=( $(compgen -f -- "$cur") )
  fi
}
complete -o default -F _%[1]s %[2]s
`, n, app.Name)
	return b.String()
}

func zshCompletion(app *cli.App) string {
	t, n := newTable(app), fn(app.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n", app.Name)
	fmt.Fprintf(&b, "# zsh completion for %s, written by `%s completion zsh` from its command tree.\n", app.Name, app.Name)
	fmt.Fprintf(&b, "# Install: %s completion zsh > /usr/share/zsh/vendor-completions/_%s (or any folder of $fpath)\n", app.Name, app.Name)
	shHelpers(&b, app, t)
	fmt.Fprintf(&b, `_%[1]s() {
  local cur=${words[CURRENT]} prev=${words[CURRENT-1]} cmdpath= w i
  for (( i = 2; i < CURRENT; i++ )); do
    w=${words[i]}
    case "$w" in
      -*=*) ;;
      -*) [[ " $(__%[1]s_values "$cmdpath") " == *" $w "* ]] && (( i++ )) ;;
      *) [[ " $(__%[1]s_cmds "$cmdpath") " == *" $w "* ]] && cmdpath=${cmdpath:+$cmdpath }$w ;;
    esac
  done
  if [[ $prev == -* && " $(__%[1]s_values "$cmdpath") " == *" $prev "* ]]; then
    local choices=$(__%[1]s_choices "$prev")
    if [[ -n $choices ]]; then
      compadd -- ${=choices}
    else
      _files
    fi
    return
  fi
  local list
  if [[ $cur == -* ]]; then
    list=$(__%[1]s_flags "$cmdpath")
    compadd -- ${=list}
  elif [[ -n $(__%[1]s_cmds "$cmdpath") ]]; then
    list=$(__%[1]s_cmds "$cmdpath")
    compadd -- ${=list}
  elif [[ -n $(__%[1]s_leaf "$cmdpath") ]]; then
    _files
  fi
}
if [[ "${funcstack[1]}" == "_%[1]s" ]]; then
  _%[1]s "$@"
else
  compdef _%[1]s %[2]s
fi
`, n, app.Name)
	return b.String()
}

// fq quotes s for fish.
func fq(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func fishCompletion(app *cli.App) string {
	t, n := newTable(app), fn(app.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completion for %s, written by `%s completion fish` from its command tree.\n", app.Name, app.Name)
	fmt.Fprintf(&b, "# Install: %s completion fish > /usr/share/fish/vendor_completions.d/%s.fish\n", app.Name, app.Name)
	fishSwitch := func(name string, m map[string][]string) {
		fmt.Fprintf(&b, "function %s\n    switch \"$argv[1]\"\n", name)
		for _, p := range t.paths {
			if len(m[p]) == 0 {
				continue
			}
			fmt.Fprintf(&b, "        case %s\n            printf '%%s\\n' %s\n", fq(p), fishWords(m[p]))
		}
		b.WriteString("    end\nend\n")
	}
	fishSwitch("__"+n+"_cmds", t.cmds)
	fishSwitch("__"+n+"_values", t.values)
	fmt.Fprintf(&b, `function __%[1]s_path
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmdpath
    set -l skip 0
    for w in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case '-*=*'
            case '-*'
                if contains -- $w (__%[1]s_values "$cmdpath")
                    set skip 1
                end
            case '*'
                if contains -- $w (__%[1]s_cmds "$cmdpath")
                    set cmdpath (string join ' ' $cmdpath $w)
                end
        end
    end
    echo "$cmdpath"
end
complete -c %[2]s -f
`, n, app.Name)
	for _, p := range t.paths {
		cond := fmt.Sprintf("test \"$(__%s_path)\" = %s", n, fq(p))
		for i, c := range t.cmds[p] {
			fmt.Fprintf(&b, "complete -c %s -n %s -a %s", app.Name, fq(cond), fq(c))
			if u := t.usages[p][i]; u != "" {
				fmt.Fprintf(&b, " -d %s", fq(u))
			}
			b.WriteString("\n")
		}
		if t.leaf[p] && len(t.cmds[p]) == 0 && p != "" {
			fmt.Fprintf(&b, "complete -c %s -n %s -F\n", app.Name, fq(cond))
		}
		for _, w := range t.flags[p] {
			f := t.flagOf[p][w]
			opt := "-l " + strings.TrimLeft(w, "-")
			if !strings.HasPrefix(w, "--") {
				opt = "-s " + strings.TrimLeft(w, "-")
			}
			fmt.Fprintf(&b, "complete -c %s -n %s %s", app.Name, fq(cond), opt)
			if takesValue(f) {
				if c := t.choices[w]; c != nil {
					fmt.Fprintf(&b, " -x -a %s", fq(strings.Join(c, " ")))
				} else {
					b.WriteString(" -r -F")
				}
			}
			if _, u := flagUsage(f); u != "" {
				fmt.Fprintf(&b, " -d %s", fq(u))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func fishWords(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = fq(w)
	}
	return strings.Join(q, " ")
}

// pq quotes s for PowerShell.
func pq(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func psTable(b *strings.Builder, name string, t *table, m map[string][]string) {
	fmt.Fprintf(b, "    $%s = @{\n", name)
	for _, k := range t.paths {
		if len(m[k]) == 0 {
			continue
		}
		q := make([]string, len(m[k]))
		for i, w := range m[k] {
			q[i] = pq(w)
		}
		fmt.Fprintf(b, "        %s = @(%s)\n", pq(k), strings.Join(q, ", "))
	}
	b.WriteString("    }\n")
}

func powershellCompletion(app *cli.App) string {
	t := newTable(app)
	var b strings.Builder
	fmt.Fprintf(&b, "# PowerShell completion for %s, written by `%s completion powershell` from its command tree.\n", app.Name, app.Name)
	fmt.Fprintf(&b, "# Install: add to $PROFILE the line\n#   %s completion powershell | Out-String | Invoke-Expression\n", app.Name)
	fmt.Fprintf(&b, "Register-ArgumentCompleter -Native -CommandName %s, %s -ScriptBlock {\n", pq(app.Name), pq(app.Name+".exe"))
	b.WriteString("    param($wordToComplete, $commandAst, $cursorPosition)\n")
	psTable(&b, "cmds", t, t.cmds)
	psTable(&b, "flags", t, t.flags)
	psTable(&b, "values", t, t.values)
	b.WriteString("    $choices = @{\n")
	for _, w := range sortedKeys(t.choices) {
		q := make([]string, len(t.choices[w]))
		for i, c := range t.choices[w] {
			q[i] = pq(c)
		}
		fmt.Fprintf(&b, "        %s = @(%s)\n", pq(w), strings.Join(q, ", "))
	}
	b.WriteString("    }\n")
	b.WriteString(`    $cmdpath = ''
    $skip = $false
    $prev = ''
    foreach ($e in @($commandAst.CommandElements | Select-Object -Skip 1)) {
        if ($e.Extent.EndOffset -ge $cursorPosition) { break }
        $w = $e.ToString()
        if ($skip) { $skip = $false; continue }
        if ($w.StartsWith('-')) {
            if (-not $w.Contains('=') -and @($values[$cmdpath]) -ccontains $w) { $skip = $true; $prev = $w }
            continue
        }
        if (@($cmds[$cmdpath]) -ccontains $w) { $cmdpath = if ($cmdpath) { "$cmdpath $w" } else { $w } }
    }
    $list = @()
    if ($skip) {
        $list = @($choices[$prev])
        if ($list.Count -eq 0) { return }  # a file name: PowerShell's own completion
    } elseif ($wordToComplete.StartsWith('-')) {
        $list = @($flags[$cmdpath])
    } else {
        $list = @($cmds[$cmdpath])
    }
    $list | Where-Object { $_ -and $_.StartsWith($wordToComplete) } | ForEach-Object {
        [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
    }
}
`)
	return b.String()
}
