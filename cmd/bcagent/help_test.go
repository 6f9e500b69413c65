package main

import (
	"io"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/clitest"
)

// TestHelpConventions walks every command's --help (clitest.CheckHelp):
// one default per flag, meaningful placeholders, required flags marked
// and reported all at once.
func TestHelpConventions(t *testing.T) {
	t.Setenv("BCAGENT_STATE", t.TempDir())
	clitest.CheckHelp(t, newApp(io.Discard, io.Discard), func(args ...string) (int, string, string) {
		return bcagent(t, args...)
	})
}
