//go:build !windows

package client

// inUse: only Windows refuses to open a file another program is writing.
func inUse(error) bool { return false }

func isWindows() bool { return false }
