//go:build !windows

package client

import (
	"errors"
	"os"
	"syscall"
)

// openBundleNoFollow opens path for reading without following a symbolic
// link in its last element (O_NOFOLLOW: a link is errBundleLink) and
// without blocking (O_NONBLOCK: a FIFO opens at once, and is then refused
// as not a regular file by its handle's mode, instead of waiting for a
// writer forever). O_NONBLOCK does nothing to a regular file's reads.
func openBundleNoFollow(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		// ELOOP on Linux, EMLINK on the BSDs: the last element is a link.
		if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK) {
			return nil, errBundleLink
		}
		return nil, err
	}
	return f, nil
}
