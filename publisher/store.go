package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/repo"
)

// Store holds a repository's files under two prefixes, "metadata/" and
// "targets/". Names are '/'-separated and validated by the caller.
//
// Contract: Get reports a missing file with an error wrapping
// fs.ErrNotExist. Put replaces a file atomically: a reader sees the old or
// the new content, never a part, and a failed Put leaves the old content.
type Store interface {
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	Put(ctx context.Context, name string, r io.Reader) error
	Exists(ctx context.Context, name string) (bool, error)
}

// DirStore is a repository kept in a local directory.
type DirStore struct {
	Dir string
}

var _ Store = (*DirStore)(nil)

// OpenStore returns the store for a --repo value. Only directories are
// supported so far; s3:// is refused with a clear message.
func OpenStore(ref string) (Store, error) {
	if ref == "" {
		return nil, errors.New("--repo is required")
	}
	if strings.Contains(ref, "://") {
		return nil, fmt.Errorf("--repo %s: only directory repositories are supported in this version", ref)
	}
	return &DirStore{Dir: ref}, nil
}

func (d *DirStore) path(name string) (string, error) {
	clean := path.Clean(name)
	if clean != name || strings.HasPrefix(name, "/") || strings.HasPrefix(name, "../") || name == ".." {
		return "", fmt.Errorf("store: bad name %q", name)
	}
	return filepath.Join(d.Dir, filepath.FromSlash(name)), nil
}

// Get opens a file; the returned value is an *os.File (seekable).
func (d *DirStore) Get(_ context.Context, name string) (io.ReadCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return f, nil
}

// Put writes a file atomically (temp, fsync, rename, fsync directory).
func (d *DirStore) Put(_ context.Context, name string, r io.Reader) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := mkdirAllSync(filepath.Dir(p)); err != nil {
		return err
	}
	return atomicfile.Write(p, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// mkdirAllSync creates a directory and its parents, fsyncing each parent
// whose entries changed so that the new directories survive a power loss.
func mkdirAllSync(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if err := mkdirAllSync(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dir))
}

// Exists reports whether a file is present.
func (d *DirStore) Exists(_ context.Context, name string) (bool, error) {
	p, err := d.path(name)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// readAll reads a whole (small) file from a store with a size limit.
func readAll(ctx context.Context, s Store, name string, limit int64) ([]byte, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", name, limit)
	}
	return b, nil
}

// loadRepo loads and verifies the repository in a store.
func loadRepo(ctx context.Context, s Store) (*repo.Repo, error) {
	return repo.Load(func(name string) ([]byte, error) {
		return readAll(ctx, s, "metadata/"+name, repo.MaxTargetsSize)
	})
}

// writeMetadata writes metadata files in order; timestamp.json comes last
// in every list repo returns.
func writeMetadata(ctx context.Context, s Store, files []repo.File) error {
	for _, f := range files {
		if err := s.Put(ctx, "metadata/"+f.Name, strings.NewReader(string(f.Data))); err != nil {
			return fmt.Errorf("publish %s: %w", f.Name, err)
		}
	}
	return nil
}
