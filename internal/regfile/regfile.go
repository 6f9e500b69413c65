// Package regfile opens and reads the files a person names on a command
// line (signatures, keys, certificates, CRLs, policies, feature texts,
// staged roots) and the files of a trust directory.
//
// What it guards against: a name that is not a regular file, and a file
// larger than the caller's limit. A device (/dev/zero, /dev/urandom) would
// be read until memory runs out; a FIFO would block on open or read
// forever; a directory fails in odd ways later. So the file is opened
// without blocking (O_NONBLOCK where the system has it, which opens a FIFO
// at once instead of waiting for a writer), its type and size are checked
// on the open descriptor (fstat, so a file swapped in after a check is
// still caught), and only then is it read, through an io.LimitReader that
// also catches a file that grows while it is read. Every error names the
// file, and size errors name the limit.
//
// It trusts nothing about the file and never writes.
package regfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Errors for errors.Is.
var (
	// ErrNotRegular: the name is a device, FIFO, socket or directory.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is larger than the caller's limit.
	ErrTooLarge = errors.New("larger than the limit")
)

// Open opens a regular file for reading. A FIFO or device is refused
// without waiting on it.
func Open(name string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return nil, nil, pathError(name, err)
	}
	fi, err := checked(f, name)
	if err != nil {
		return nil, nil, err
	}
	return f, fi, nil
}

// OpenIn is Open for a name below root (os.Root: no symbolic link or ".."
// leads out of it).
func OpenIn(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|nonblock, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := checked(f, name)
	if err != nil {
		return nil, nil, err
	}
	return f, fi, nil
}

func checked(f *os.File, name string) (fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, pathError(name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w (%s)", name, ErrNotRegular, kind(fi.Mode()))
	}
	return fi, nil
}

// Read reads a whole regular file of at most limit bytes. The size is
// checked before anything is read.
func Read(name string, limit int64) ([]byte, error) {
	f, fi, err := Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readChecked(f, fi, name, limit)
}

// ReadIn is Read for a name below root.
func ReadIn(root *os.Root, name string, limit int64) ([]byte, error) {
	f, fi, err := OpenIn(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readChecked(f, fi, name, limit)
}

func readChecked(f *os.File, fi fs.FileInfo, name string, limit int64) ([]byte, error) {
	if fi.Size() > limit {
		return nil, TooLarge(name, fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, pathError(name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: grew while it was read: %w of %d bytes", name, ErrTooLarge, limit)
	}
	return data, nil
}

// TooLarge is the error for a file of size bytes over limit.
func TooLarge(name string, size, limit int64) error {
	return fmt.Errorf("%s: %d bytes, %w of %d bytes", name, size, ErrTooLarge, limit)
}

// pathError words an *fs.PathError as "NAME: reason" (not "open NAME:
// reason"), keeping it matchable with errors.Is.
func pathError(name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", name, pe.Err)
	}
	return fmt.Errorf("%s: %w", name, err)
}

func kind(m fs.FileMode) string {
	switch t := m.Type(); {
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a device"
	case t&fs.ModeSocket != 0:
		return "a socket"
	default:
		return t.String()
	}
}
