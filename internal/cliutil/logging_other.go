//go:build !unix

package cliutil

// journalStream: there is no systemd journal on Windows (the service logs
// to the Event Log), whatever the environment says.
func journalStream(string) bool { return false }
