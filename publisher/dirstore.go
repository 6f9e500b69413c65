package publisher

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/internal/regfile"
)

// ErrOutside: an object's name leads through a symbolic link out of the
// repository directory (or through an absolute link). DirStore never
// follows such a link, for reading (`bcpublish serve` answers 404) or for
// writing.
var ErrOutside = errors.New("symbolic link leads out of the repository directory")

// DirStore is a repository kept in a local directory. Tags are the
// content's sha256; Swap serializes publishers on one machine with a lock
// file in the repository directory.
//
// Every read and write goes through an os.Root opened on Dir, so no ".."
// and no symbolic link inside the directory can make it read, write or
// delete a file elsewhere on the machine (a link to /etc/passwd placed in
// targets/ is refused with ErrOutside, not served). Links that stay inside
// the directory are followed. How Dir itself was reached (a symlink in the
// --repo path) does not matter: it is the boundary. Only regular files are
// objects: a directory, FIFO or device under a name is reported as missing.
type DirStore struct {
	Dir string
}

var _ Store = (*DirStore)(nil)

// name validates an object name and returns it in the OS's form, relative
// to Dir.
func (d *DirStore) name(name string) (string, error) {
	clean := path.Clean(name)
	if clean != name || strings.HasPrefix(name, "/") || strings.HasPrefix(name, "../") || name == ".." || name == "." {
		return "", fmt.Errorf("store: bad name %q", name)
	}
	return filepath.FromSlash(name), nil
}

// root opens Dir as a confined root for reading.
func (d *DirStore) root() (*os.Root, error) {
	root, err := os.OpenRoot(d.Dir)
	if err != nil {
		return nil, fmt.Errorf("repository directory: %w", err)
	}
	return root, nil
}

// rootForWrite opens Dir as a confined root, creating it first if needed.
func (d *DirStore) rootForWrite() (*os.Root, error) {
	if _, err := os.Stat(d.Dir); errors.Is(err, fs.ErrNotExist) {
		if err := mkdirAllSyncPath(d.Dir); err != nil {
			return nil, fmt.Errorf("repository directory: %w", err)
		}
	}
	return d.root()
}

// confined explains an error from an operation on name through root:
// os.Root only says "path escapes from parent" when a symbolic link leads
// out of the directory; this names the link and where it points, and
// wraps ErrOutside.
func (d *DirStore) confined(root *os.Root, name string, err error) error {
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return err
	}
	elems := strings.Split(filepath.ToSlash(name), "/")
	for i := range elems {
		p := filepath.FromSlash(strings.Join(elems[:i+1], "/"))
		fi, lerr := root.Lstat(p)
		if lerr != nil {
			break
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if _, serr := root.Stat(p); serr != nil && !errors.Is(serr, fs.ErrNotExist) {
			target, _ := root.Readlink(p)
			return fmt.Errorf("%s: %s is a symbolic link to %s, outside the repository directory %s: %w",
				filepath.ToSlash(name), filepath.ToSlash(p), target, d.Dir, ErrOutside)
		}
	}
	return fmt.Errorf("%s: %w", filepath.ToSlash(name), err)
}

// Get opens an object; the returned value is an *os.File (seekable).
func (d *DirStore) Get(_ context.Context, name string) (io.ReadCloser, error) {
	n, err := d.name(name)
	if err != nil {
		return nil, err
	}
	root, err := d.root()
	if err != nil {
		return nil, err
	}
	defer root.Close() // the file keeps its own descriptor
	return d.open(root, n)
}

func (d *DirStore) open(root *os.Root, n string) (*os.File, error) {
	f, _, err := d.openStat(root, n)
	return f, err
}

// openStat is open, with the file's fstat (taken on the open descriptor).
func (d *DirStore) openStat(root *os.Root, n string) (*os.File, fs.FileInfo, error) {
	f, fi, err := regfile.OpenIn(root, n)
	if errors.Is(err, regfile.ErrNotRegular) {
		return nil, nil, fmt.Errorf("%s: %w", filepath.ToSlash(n), fs.ErrNotExist)
	}
	if err != nil {
		return nil, nil, d.confined(root, n, err)
	}
	return f, fi, nil
}

// Read reads a small object and its tag (sha256 of the content).
func (d *DirStore) Read(_ context.Context, name string, limit int64) ([]byte, string, error) {
	n, err := d.name(name)
	if err != nil {
		return nil, "", err
	}
	root, err := d.root()
	if err != nil {
		return nil, "", err
	}
	defer root.Close()
	return d.read(root, n, limit)
}

func (d *DirStore) read(root *os.Root, n string, limit int64) ([]byte, string, error) {
	f, err := d.open(root, n)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > limit {
		return nil, "", fmt.Errorf("read %s: larger than %d bytes", filepath.ToSlash(n), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, "", err
	}
	if int64(len(b)) > limit {
		return nil, "", fmt.Errorf("read %s: larger than %d bytes", filepath.ToSlash(n), limit)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// Exists reports whether an object is present.
func (d *DirStore) Exists(_ context.Context, name string) (bool, error) {
	n, err := d.name(name)
	if err != nil {
		return false, err
	}
	root, err := d.root()
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer root.Close()
	_, err = root.Stat(n)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, d.confined(root, n, err)
	}
	return true, nil
}

// Size returns an object's length in bytes (a stat); a missing object, or
// one that is not a regular file, is an error wrapping fs.ErrNotExist.
func (d *DirStore) Size(_ context.Context, name string) (int64, error) {
	n, err := d.name(name)
	if err != nil {
		return 0, err
	}
	root, err := d.root()
	if err != nil {
		return 0, err
	}
	defer root.Close()
	fi, err := root.Stat(n)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	if err != nil {
		return 0, d.confined(root, n, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return fi.Size(), nil
}

// dirServer is a DirStore as `bcpublish serve` reads it: the same rules
// (every open goes through an os.Root on Dir, so no ".." and no symbolic
// link out of the directory is followed), but the root is held open
// instead of opened and closed for every request, and a file's identity
// (device, inode, modification time, size) can be checked with one stat.
//
// The held root stays the directory Dir names: before each use, Dir is
// stat'ed by its path (following a symbolic link in the --repo path, as
// os.OpenRoot does), and if it is no longer the directory the root was
// opened on (the repository directory was replaced, or the link moved to
// another one), a new root is opened. Roots that are replaced are left to
// their finalizer: requests in flight may still be using them.
type dirServer struct {
	d   *DirStore
	mu  sync.Mutex // serializes reopening
	cur atomic.Pointer[heldRoot]
}

type heldRoot struct {
	root *os.Root
	fi   fs.FileInfo // of the directory the root was opened on
}

func (d *DirStore) server() *dirServer { return &dirServer{d: d} }

// root returns a root on the directory Dir names now.
func (s *dirServer) root() (*os.Root, error) {
	fi, err := os.Stat(s.d.Dir)
	if err != nil {
		return nil, fmt.Errorf("repository directory: %w", err)
	}
	if h := s.cur.Load(); h != nil && os.SameFile(h.fi, fi) {
		return h.root, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.cur.Load(); h != nil && os.SameFile(h.fi, fi) {
		return h.root, nil
	}
	root, err := s.d.root()
	if err != nil {
		return nil, err
	}
	// The identity of what was opened, not of what was stat'ed: if Dir
	// was replaced in between, the next request's stat tells.
	if fi, err = root.Stat("."); err != nil {
		root.Close()
		return nil, fmt.Errorf("repository directory: %w", err)
	}
	s.cur.Store(&heldRoot{root: root, fi: fi})
	return root, nil
}

// open opens an object, as DirStore.Get does, with its fstat.
func (s *dirServer) open(name string) (*os.File, fs.FileInfo, error) {
	n, err := s.d.name(name)
	if err != nil {
		return nil, nil, err
	}
	root, err := s.root()
	if err != nil {
		return nil, nil, err
	}
	return s.d.openStat(root, n)
}

// read reads a small object, as DirStore.Read does, with the fstat of the
// file read, taken before reading it (so that a change while it is read
// shows as a later modification time).
func (s *dirServer) read(name string, limit int64) ([]byte, fs.FileInfo, error) {
	f, fi, err := s.open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if fi.Size() > limit {
		return nil, nil, fmt.Errorf("read %s: larger than %d bytes", name, limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(b)) > limit {
		return nil, nil, fmt.Errorf("read %s: larger than %d bytes", name, limit)
	}
	return b, fi, nil
}

// pathOf is name's path from Dir, for unchanged.
func (s *dirServer) pathOf(name string) string {
	return filepath.Join(s.d.Dir, filepath.FromSlash(name))
}

// unchanged says whether name, reached by its path from Dir now, is still
// the file fi describes: same device and inode (a publish replaces
// timestamp.json by a rename, so a new inode), same modification time and
// size. It reads nothing; a false answer only makes the caller read the
// file again through the root, so a symbolic link out of the directory
// met on the way is refused there, not here.
//
// path is pathOf(name), computed once by the caller.
func (s *dirServer) unchanged(path string, fi fs.FileInfo) bool {
	now, err := os.Stat(path)
	return err == nil && os.SameFile(now, fi) && now.ModTime().Equal(fi.ModTime()) && now.Size() == fi.Size()
}

// List returns the object names under prefix. It walks only the directory
// the prefix names, and never descends through a symbolic link.
func (d *DirStore) List(_ context.Context, prefix string) ([]string, error) {
	root, err := d.root()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer root.Close()
	dir := path.Dir(prefix + "x") // "targets/" -> "targets", "targets/a" -> "targets"
	var out []string
	err = fs.WalkDir(root.FS(), dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return d.confined(root, filepath.FromSlash(p), err)
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// PutIfAbsent writes a temp file, fsyncs it and links it into place:
// link fails if the name exists, so creation is atomic and exclusive. It
// reads at most size bytes and stores nothing unless r holds exactly size
// (a body cut short, or one that goes on, is refused: errSize).
func (d *DirStore) PutIfAbsent(_ context.Context, name string, r io.ReadSeeker, size int64) error {
	n, err := d.name(name)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%s: %w: the size is not known", name, errSize)
	}
	root, err := d.rootForWrite()
	if err != nil {
		return err
	}
	defer root.Close()
	dir := filepath.Dir(n)
	if err := mkdirAllSync(root, dir); err != nil {
		return d.confined(root, n, err)
	}
	tmp := filepath.Join(dir, ".put-"+randomSuffix())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return d.confined(root, tmp, err)
	}
	defer root.Remove(tmp)
	got, err := io.Copy(f, io.LimitReader(r, size))
	if err != nil {
		f.Close()
		return err
	}
	if got == size {
		// One byte more would be too many.
		var b [1]byte
		if m, _ := io.ReadFull(r, b[:]); m > 0 {
			got++
		}
	}
	if got != size {
		f.Close()
		return sizeError(name, got, size)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := root.Link(tmp, n); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", name, ErrExists)
		}
		return d.confined(root, n, err)
	}
	return atomicfile.SyncDirIn(root, dir)
}

// errSize: PutIfAbsent was given a body shorter or longer than its size.
var errSize = errors.New("the body is not the size given")

func sizeError(name string, got, size int64) error {
	more := ""
	if got > size {
		more = " or more"
	}
	return fmt.Errorf("%s: %w (%d bytes%s, want %d); nothing was stored", name, errSize, got, more, size)
}

// checkSize says whether r holds exactly size bytes from where it is, and
// leaves it there.
func checkSize(name string, r io.ReadSeeker, size int64) error {
	if size < 0 {
		return fmt.Errorf("%s: %w: the size is not known", name, errSize)
	}
	cur, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	end, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if _, err := r.Seek(cur, io.SeekStart); err != nil {
		return err
	}
	if end-cur != size {
		return sizeError(name, end-cur, size)
	}
	return nil
}

// Swap replaces an object if its content still has the given tag.
func (d *DirStore) Swap(_ context.Context, name, tag string, data []byte) error {
	n, err := d.name(name)
	if err != nil {
		return err
	}
	root, err := d.rootForWrite()
	if err != nil {
		return err
	}
	defer root.Close()
	dir := filepath.Dir(n)
	if err := mkdirAllSync(root, dir); err != nil {
		return d.confined(root, n, err)
	}
	lf, err := root.OpenFile(".bcupdate.lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return d.confined(root, ".bcupdate.lock", err)
	}
	unlock, err := lockFile(lf)
	if err != nil {
		return err
	}
	defer unlock()
	_, cur, err := d.read(root, n, 64<<20)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cur = ""
	case err != nil:
		return err
	}
	if cur != tag {
		return fmt.Errorf("%s: %w", name, ErrChanged)
	}
	if err := atomicfile.WriteIn(root, n, data, 0o644); err != nil {
		return d.confined(root, n, err)
	}
	return atomicfile.SyncDirIn(root, dir)
}

// Delete removes an object (a symbolic link is removed, not followed).
func (d *DirStore) Delete(_ context.Context, name string) error {
	n, err := d.name(name)
	if err != nil {
		return err
	}
	root, err := d.root()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return d.confined(root, n, err)
	}
	return nil
}

func randomSuffix() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// mkdirAllSync creates a directory below root and its parents, fsyncing
// each parent whose entries changed so that the new directories survive a
// power loss.
func mkdirAllSync(root *os.Root, dir string) error {
	if dir == "." || dir == "" {
		return nil
	}
	fi, err := root.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("%s: not a directory", filepath.ToSlash(dir))
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if err := mkdirAllSync(root, filepath.Dir(dir)); err != nil {
		return err
	}
	if err := root.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return atomicfile.SyncDirIn(root, filepath.Dir(dir))
}

// mkdirAllSyncPath is mkdirAllSync for the repository directory itself,
// which is named by the user and may be reached through links.
func mkdirAllSyncPath(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if err := mkdirAllSyncPath(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dir))
}
