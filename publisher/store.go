package publisher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

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
//     It stores exactly size bytes: a body shorter or longer is refused
//     and nothing is stored.
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

// readAll reads a whole (small) object with a size limit.
func readAll(ctx context.Context, s Store, name string, limit int64) ([]byte, error) {
	b, _, err := s.Read(ctx, name, limit)
	return b, err
}

// loadRepo loads and verifies the repository in a store, remembering the
// tag of the timestamp.json it started from.
func loadRepo(ctx context.Context, s Store) (*repo.Repo, error) {
	return loadWith(ctx, s, repo.Load)
}

func loadWith(ctx context.Context, s Store, load func(repo.ReadFunc) (*repo.Repo, error)) (*repo.Repo, error) {
	var tag string
	r, err := load(func(name string) ([]byte, error) {
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
