package client

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
)

// Files under the state directory are opened through one confined root
// (os.Root): the kernel-assisted walk of os.Root refuses ".." and symbolic
// links that lead out of <state>, so a symlinked staging/ (or state.json)
// makes an operation fail instead of writing, reading or deleting a file
// somewhere else on the PC. Names passed to the helpers below are relative
// to <state>.

// stagingRoot is the directory, relative to <state>, that holds staged
// downloads: staging/<component>/<version>/<file>.
const stagingRoot = "staging"

// openRoot opens the state directory as a confined root. The caller closes
// it. The state directory itself is the boundary: how it was reached (a
// symlink in --state) does not matter, what lies below it does.
func (a *Agent) openRoot() (*os.Root, error) {
	root, err := os.OpenRoot(a.dir)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return root, nil
}

// confined explains an error from an operation on name through the state
// root. os.Root only says "path escapes from parent" when a symlink leads
// out of the state directory; this names the link and where it points.
func (a *Agent) confined(root *os.Root, name string, err error) error {
	if err == nil {
		return nil
	}
	elems := strings.Split(filepath.ToSlash(filepath.Clean(name)), "/")
	for i := range elems {
		p := filepath.Join(elems[:i+1]...)
		fi, lerr := root.Lstat(p)
		if lerr != nil {
			break
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if _, serr := root.Stat(p); serr != nil {
			target, _ := root.Readlink(p)
			return fmt.Errorf("%s is a symbolic link to %s, outside the state directory %s (or dangling): the agent refuses to follow it; make it a real directory owned by the agent (mode 0700): %w",
				filepath.Join(a.dir, p), target, a.dir, err)
		}
	}
	return fmt.Errorf("%s: %w", filepath.Join(a.dir, name), err)
}

// readFileRoot reads a regular file below root, refusing one larger than
// limit (a FIFO or device in its place is refused, not opened: opening a
// FIFO would block the agent).
func readFileRoot(root *os.Root, name string, limit int64) ([]byte, error) {
	fi, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", name, fi.Mode().Type())
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// writeFileRoot replaces name below root with data (atomicfile.WriteIn);
// the caller fsyncs the directory (syncDirRoot).
func writeFileRoot(root *os.Root, name string, data []byte, perm os.FileMode) error {
	if err := atomicfile.WriteIn(root, name, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// writeFileRootSync is writeFileRoot followed by an fsync of the directory.
func writeFileRootSync(root *os.Root, name string, data []byte, perm os.FileMode) error {
	if err := writeFileRoot(root, name, data, perm); err != nil {
		return err
	}
	return syncDirRoot(root, filepath.Dir(name))
}

// syncDirRoot fsyncs a directory below root (atomicfile.SyncDirIn).
func syncDirRoot(root *os.Root, dir string) error { return atomicfile.SyncDirIn(root, dir) }

// errNotStaged: a staged file path (state.json's "file") that is not
// inside <state>/staging.
var errNotStaged = errors.New("not inside the staging directory")

// stagedName turns a staged file's absolute path, as state.json records
// it, into its name relative to the state directory, and refuses one that
// is not below staging/ (state.json edited by hand, or the state directory
// moved since the file was staged).
func (a *Agent) stagedName(file string) (string, error) {
	rel, err := filepath.Rel(a.dir, file)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("staged file %s: %w %s", file, errNotStaged, filepath.Join(a.dir, stagingRoot))
	}
	first, rest, _ := strings.Cut(filepath.ToSlash(rel), "/")
	if first != stagingRoot || rest == "" {
		return "", fmt.Errorf("staged file %s: %w %s", file, errNotStaged, filepath.Join(a.dir, stagingRoot))
	}
	return rel, nil
}

// openStaged opens a staged file (an absolute path below <state>/staging,
// as Release.File holds it) through the state root, read-only.
func (a *Agent) openStaged(file string) (*os.File, error) {
	name, err := a.stagedName(file)
	if err != nil {
		return nil, err
	}
	root, err := a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close() // the file stays open: it has its own descriptor
	f, err := root.Open(name)
	if err != nil {
		return nil, a.confined(root, name, err)
	}
	return f, nil
}

// readStaged reads a small staged file (the detached signature beside a
// staged artifact) through the state root.
func (a *Agent) readStaged(file string, limit int64) ([]byte, error) {
	name, err := a.stagedName(file)
	if err != nil {
		return nil, err
	}
	root, err := a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	data, err := readFileRoot(root, name, limit)
	if err != nil {
		return nil, a.confined(root, name, err)
	}
	return data, nil
}
