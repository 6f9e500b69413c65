package publisher

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/beckmanconnect/bcupdate/internal/archive"
)

// checkArchive unpacks an archive release into a temporary directory
// (removed afterwards) with internal/archive, the code every agent installs
// it with, so that an archive the agents would refuse (empty, truncated or
// corrupt, an entry that escapes, a symlink chain, a size that lies, a
// device) is refused here, before anything is published, instead of
// reaching every agent as a "possible attack". It is the release
// engineer's input that is wrong: a usage error naming the file and entry.
func checkArchive(file string) error {
	f, fi, err := openFlagFile("--file", file)
	if err != nil {
		return err
	}
	defer f.Close()
	tmp, err := os.MkdirTemp("", "bcpublish-archive-check-*")
	if err != nil {
		return fmt.Errorf("--file %s: a temporary directory to check the archive in: %w", file, err)
	}
	defer os.RemoveAll(tmp)
	dest := filepath.Join(tmp, "unpacked")
	if err := os.Mkdir(dest, 0o700); err != nil {
		return fmt.Errorf("--file %s: %w", file, err)
	}
	switch archive.Kind(file) {
	case "zip":
		err = archive.ExtractZipReader(f, fi.Size(), dest)
	case "tar.gz":
		err = archive.ExtractTarGz(bufio.NewReader(f), dest)
	default:
		return usagef("--file %s: not a .tar.gz, .tgz or .zip archive", file)
	}
	if errors.Is(err, archive.ErrUnsafe) {
		return usagef("--file %s: %v; agents would refuse it", file, err)
	}
	if err != nil {
		return fmt.Errorf("--file %s: unpacking it to check it (in %s; set TMPDIR for more room): %w", file, os.TempDir(), err)
	}
	return nil
}
