//go:build !windows

package main

import (
	"syscall"
	"testing"
)

// mkfifo makes a FIFO at path (false: the platform has none).
func mkfifo(t *testing.T, path string) bool {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return true
}
