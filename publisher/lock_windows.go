//go:build windows

package publisher

import (
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive lock (waiting for it) on an open lock file;
// the returned function releases it and closes the file.
func lockFile(f *os.File) (func(), error) {
	if err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, new(windows.Overlapped)); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
