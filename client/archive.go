package client

import (
	"io"

	"github.com/beckmanconnect/bcupdate/internal/archive"
)

// Archives are unpacked and confined by internal/archive, the code
// `bcpublish release add` also runs, so that a publisher refuses at publish
// time what every agent would refuse.

// Limits on what an archive may unpack to.
const (
	MaxArchiveEntries = archive.MaxEntries
	MaxArchiveBytes   = archive.MaxBytes
)

// ErrUnsafeArchive marks an archive entry that would escape the install
// directory or is of a kind we do not install, or a stream that is not a
// valid archive. The archive passed TUF and code signing, so this is a
// publisher mistake or an attack: exit code 3.
var ErrUnsafeArchive = archive.ErrUnsafe

// ExtractTarGz unpacks a .tar.gz into dest, an existing empty directory,
// confined to it (archive.ExtractTarGz). On error dest is emptied again.
func ExtractTarGz(r io.Reader, dest string) error { return archive.ExtractTarGz(r, dest) }

// ExtractZipReader unpacks a .zip of size bytes into dest, an existing
// empty directory, confined to it (archive.ExtractZipReader). On error dest
// is emptied again.
func ExtractZipReader(src io.ReaderAt, size int64, dest string) error {
	return archive.ExtractZipReader(src, size, dest)
}
