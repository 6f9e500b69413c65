package main

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/clitest"
)

// readOnlyCommands take a repository but never write to it: they have the
// S3 options that reach it, not those of uploads.
var readOnlyCommands = []string{"release list", "status", "serve", "root stage", "bundle create"}

// TestHelpFlagHygiene walks every command's --help: no flag shows two
// defaults, every flag that takes a value names it with a placeholder
// (never urfave/cli's bare "value"), and the S3 upload options (server-side
// encryption) appear only on the commands that write to the repository.
func TestHelpFlagHygiene(t *testing.T) {
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(slices.Clone(path), c.Name)
			if len(c.Subcommands) > 0 {
				walk(p, c.Subcommands)
				continue
			}
			name := strings.Join(p, " ")
			code, out, errOut := bcpublish(t, append(p, "--help")...)
			if code != 0 || !strings.Contains(out, "OPTIONS:") {
				t.Errorf("%s --help: exit %d\n%s%s", name, code, out, errOut)
				continue
			}
			for _, line := range strings.Split(out, "\n") {
				if !strings.HasPrefix(strings.TrimSpace(line), "--") {
					continue
				}
				if n := strings.Count(line, "(default:"); n > 1 {
					t.Errorf("%s: a flag shows %d defaults: %s", name, n, strings.TrimSpace(line))
				}
				if f := strings.Fields(line); len(f) > 1 && f[1] == "value" {
					t.Errorf("%s: %s has no placeholder: %s", name, f[0], strings.TrimSpace(line))
				}
			}
			names := map[string]bool{}
			for _, f := range c.Flags {
				names[f.Names()[0]] = true
				if _, isBool := f.(*cli.BoolFlag); isBool {
					continue
				}
				if usage := f.(cli.DocGenerationFlag).GetUsage(); strings.Count(usage, "`") < 2 {
					t.Errorf("%s --%s: no `PLACEHOLDER` in its usage", name, f.Names()[0])
				}
			}
			writes := names["s3-endpoint"] && !slices.Contains(readOnlyCommands, name)
			for _, upload := range []string{"sse", "sse-kms-key-id"} {
				if names[upload] != writes {
					t.Errorf("%s: has --%s %v, writes to the repository %v", name, upload, names[upload], writes)
				}
			}
		}
	}
	walk(nil, newApp(io.Discard, io.Discard).Commands)
}

// TestHelpConventions: the conventions both programs share
// (clitest.CheckHelp), required flags above all.
func TestHelpConventions(t *testing.T) {
	t.Chdir(t.TempDir())
	clitest.CheckHelp(t, newApp(io.Discard, io.Discard), func(args ...string) (int, string, string) {
		return bcpublish(t, args...)
	})
}
