package client

import (
	"errors"

	"golang.org/x/sys/windows"
)

// inUse says whether err is Windows refusing to open a file that another
// program (the one copying it into the drop folder) holds open: the file
// is not complete yet.
func inUse(err error) bool {
	return errors.Is(err, windows.ERROR_SHARING_VIOLATION) || errors.Is(err, windows.ERROR_LOCK_VIOLATION)
}

func isWindows() bool { return true }
