package main

import (
	"io"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/clitest"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

// TestCompletionAndMan: every command and flag of bcfleet is in its man page
// and its completion script for each shell (docs/operations.md), and a
// shell it has none for is a usage error.
func TestCompletionAndMan(t *testing.T) {
	clitest.CheckCompletionAndMan(t, newApp(io.Discard, io.Discard), func(args ...string) (int, string, string) {
		return bcfleet(t, args...)
	})
	for _, args := range [][]string{{"completion", "tcsh"}, {"completion"}, {"completion", "bash", "zsh"}, {"--log-format", "xml", "completion", "bash"}, {"--log-level", "loud", "man"}} {
		code, out, errOut := bcfleet(t, args...)
		if code != cliutil.ExitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "\n") {
			t.Errorf("bcfleet %v: exit %d (want %d), stdout %q, stderr %q", args, code, cliutil.ExitUsage, out, errOut)
		}
	}
}
