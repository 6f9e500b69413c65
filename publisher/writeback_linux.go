package publisher

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing f's bytes [off,
// off+n) to disk now, without waiting (sync_file_range with
// SYNC_FILE_RANGE_WRITE): the disk works while the rest is still being
// written, and the fsync at the end has little left to wait for. Only a
// hint: an error is ignored (the fsync still decides).
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
