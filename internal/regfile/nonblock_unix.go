//go:build unix

package regfile

import "syscall"

// nonblock opens a FIFO at once (instead of waiting for a writer), so that
// it can be refused; it changes nothing for a regular file.
const nonblock = syscall.O_NONBLOCK
