//go:build !unix

package cliutil

import "testing"

// TestUnderJournal: no journal outside Unix, whatever JOURNAL_STREAM says.
func TestUnderJournal(t *testing.T) {
	for _, v := range []string{"", "8:12345", "journal"} {
		t.Setenv("JOURNAL_STREAM", v)
		if UnderJournal() {
			t.Errorf("JOURNAL_STREAM=%q: UnderJournal() = true on Windows", v)
		}
	}
}
