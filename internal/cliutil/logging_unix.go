//go:build unix

package cliutil

import (
	"fmt"
	"os"
	"syscall"
)

// stderrID is stderr's device and inode (fstat): a variable, so that tests
// can put another file in its place.
var stderrID = func() (dev, ino uint64, err error) { return fileID(os.Stderr) }

// fileID is f's device and inode, from fstat(2).
func fileID(f *os.File) (dev, ino uint64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("%s: no device and inode in %T", f.Name(), fi.Sys())
	}
	// (Dev and Ino are other integer types on other systems.)
	return uint64(st.Dev), uint64(st.Ino), nil
}

// journalStream says whether JOURNAL_STREAM's value v names stderr: the
// same device and inode.
func journalStream(v string) bool {
	dev, ino, ok := parseJournalStream(v)
	if !ok {
		return false
	}
	sdev, sino, err := stderrID()
	return err == nil && sdev == dev && sino == ino
}
