//go:build unix

package publisher

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive lock (waiting for it) on an open lock file;
// the returned function releases it and closes the file.
func lockFile(f *os.File) (func(), error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
