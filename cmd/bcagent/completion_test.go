package main

import (
	"io"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/clitest"
)

// TestCompletionAndMan: every command and flag of bcagent is in its man page
// and its completion script for each shell (docs/operations.md), and a
// shell it has none for is a usage error.
func TestCompletionAndMan(t *testing.T) {
	clitest.CheckCompletionAndMan(t, newApp(io.Discard, io.Discard), func(args ...string) (int, string, string) {
		return bcagent(t, args...)
	})
}
