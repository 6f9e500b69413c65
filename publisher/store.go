package publisher

import (
	"bytes"
	"context"
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

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/repo"
)

// Errors a Store reports.
var (
	// ErrExists: PutIfAbsent found the object already there.
	ErrExists = errors.New("object already exists")
	// ErrChanged: another publisher changed the repository since this one
	// read it (a compare-and-swap or an immutable write lost the race).
	ErrChanged = errors.New("repository changed while publishing; run again")
)

// Store holds a repository's objects under "metadata/" and "targets/".
// Names are '/'-separated and validated by the caller.
//
// Contract, for every backend (storetest checks it):
//   - Get and Read report a missing object with an error wrapping fs.ErrNotExist.
//   - PutIfAbsent creates an object atomically only if it does not exist,
//     else returns ErrExists and leaves it unchanged (immutable objects).
//   - Swap replaces an object atomically only if its tag is still tag ("":
//     only if it does not exist), else returns ErrChanged. Tags come from
//     Read and are opaque.
//   - Readers see an object's old or new content, never a part.
//   - List returns the names under a prefix, sorted.
type Store interface {
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	Read(ctx context.Context, name string, limit int64) (data []byte, tag string, err error)
	Exists(ctx context.Context, name string) (bool, error)
	List(ctx context.Context, prefix string) ([]string, error)
	PutIfAbsent(ctx context.Context, name string, r io.ReadSeeker, size int64) error
	Swap(ctx context.Context, name, tag string, data []byte) error
	Delete(ctx context.Context, name string) error
}

// DirStore is a repository kept in a local directory. Tags are the
// content's sha256; Swap serializes publishers on one machine with a lock
// file in the repository directory.
type DirStore struct {
	Dir string
}

var _ Store = (*DirStore)(nil)

// OpenStore returns the store for a --repo value: a directory, or
// s3://bucket/prefix.
func OpenStore(ctx context.Context, ref string, o S3Options) (Store, error) {
	if ref == "" {
		return nil, errors.New("--repo is required")
	}
	if strings.HasPrefix(ref, "s3://") {
		return OpenS3(ctx, ref, o)
	}
	if strings.Contains(ref, "://") {
		return nil, fmt.Errorf("--repo %s: want a directory or s3://bucket/prefix", ref)
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

// Get opens an object; the returned value is an *os.File (seekable).
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

// Read reads a small object and its tag (sha256 of the content).
func (d *DirStore) Read(ctx context.Context, name string, limit int64) ([]byte, string, error) {
	rc, err := d.Get(ctx, name)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, "", err
	}
	if int64(len(b)) > limit {
		return nil, "", fmt.Errorf("read %s: larger than %d bytes", name, limit)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}

// Exists reports whether an object is present.
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

// List returns the object names under prefix.
func (d *DirStore) List(_ context.Context, prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(d.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(d.Dir, p)
		if err != nil {
			return err
		}
		if name := filepath.ToSlash(rel); strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// PutIfAbsent writes a temp file, fsyncs it and links it into place:
// link fails if the name exists, so creation is atomic and exclusive.
func (d *DirStore) PutIfAbsent(_ context.Context, name string, r io.ReadSeeker, _ int64) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := mkdirAllSync(filepath.Dir(p)); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", name, ErrExists)
		}
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(p))
}

// Swap replaces an object if its content still has the given tag.
func (d *DirStore) Swap(ctx context.Context, name, tag string, data []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := mkdirAllSync(filepath.Dir(p)); err != nil {
		return err
	}
	unlock, err := lockPath(filepath.Join(d.Dir, ".bcupdate.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	_, cur, err := d.Read(ctx, name, 64<<20)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cur = ""
	case err != nil:
		return err
	}
	if cur != tag {
		return fmt.Errorf("%s: %w", name, ErrChanged)
	}
	return atomicfile.WriteFile(p, data, 0o644)
}

// Delete removes an object.
func (d *DirStore) Delete(_ context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
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

// readAll reads a whole (small) object with a size limit.
func readAll(ctx context.Context, s Store, name string, limit int64) ([]byte, error) {
	b, _, err := s.Read(ctx, name, limit)
	return b, err
}

// loadRepo loads and verifies the repository in a store, remembering the
// tag of the timestamp.json it started from.
func loadRepo(ctx context.Context, s Store) (*repo.Repo, error) {
	var tag string
	r, err := repo.Load(func(name string) ([]byte, error) {
		b, t, err := s.Read(ctx, "metadata/"+name, repo.MaxTargetsSize)
		if name == "timestamp.json" {
			tag = t
		}
		return b, err
	})
	if err != nil {
		return nil, err
	}
	r.TimestampTag = tag
	return r, nil
}

// loadForWrite is loadRepo for a publish: versions go past any
// unreferenced versioned metadata an interrupted publish left (one lookup a
// file written, not a listing of the repository's whole history).
func loadForWrite(ctx context.Context, s Store) (*repo.Repo, error) {
	r, err := loadRepo(ctx, s)
	if err != nil {
		return nil, err
	}
	r.Taken = func(file string) (bool, error) { return s.Exists(ctx, "metadata/"+file) }
	return r, nil
}

// writeMetadata publishes metadata files in order: every versioned file is
// immutable (PutIfAbsent: if another publisher took the version, this one
// lost the race), and timestamp.json, always last, is swapped only if it is
// still the one r was loaded from.
func writeMetadata(ctx context.Context, s Store, r *repo.Repo, files []repo.File) error {
	for _, f := range files {
		name := "metadata/" + f.Name
		if f.Name == "timestamp.json" {
			if err := s.Swap(ctx, name, r.TimestampTag, f.Data); err != nil {
				if errors.Is(err, ErrChanged) {
					return fmt.Errorf("%w (timestamp.json was replaced by another publisher)", ErrChanged)
				}
				return fmt.Errorf("publish %s: %w", f.Name, err)
			}
			continue
		}
		if err := s.PutIfAbsent(ctx, name, bytes.NewReader(f.Data), int64(len(f.Data))); err != nil {
			if errors.Is(err, ErrExists) {
				return fmt.Errorf("%w (%s was published by another publisher)", ErrChanged, f.Name)
			}
			return fmt.Errorf("publish %s: %w", f.Name, err)
		}
	}
	return nil
}

// putBytesIfAbsent stores a hash-named object; one already there has the
// same content (its name is its hash).
func putBytesIfAbsent(ctx context.Context, s Store, name string, data []byte) error {
	err := s.PutIfAbsent(ctx, name, bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("publish %s: %w", name, err)
	}
	return nil
}
