package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/repo"
)

// Retry runs a publish up to 1+retries times while it loses races to other
// publishers (ErrChanged), reloading the repository each time (fn must).
func Retry(ctx context.Context, retries int, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !errors.Is(err, ErrChanged) || attempt >= retries {
			return err
		}
		wait := time.Duration(50+rand.IntN(200)) * time.Millisecond << min(attempt, 4)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// CopyResult says what Copy did.
type CopyResult struct {
	Copied, Skipped int
	Timestamp       int64
}

// Copy copies a whole repository (directory to S3 and back, or to an
// air-gapped mirror) in the safe order: it verifies the source, copies
// targets, then versioned metadata (immutable: an object already there must
// be identical), and timestamp.json last; then it verifies the copy. A
// destination that already holds a newer timestamp is refused.
func Copy(ctx context.Context, from, to Store) (*CopyResult, error) {
	src, err := loadRepo(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	_, dstTag, err := to.Read(ctx, "metadata/timestamp.json", repo.MaxTimestampSize)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("destination: %w", err)
	}
	if dst, err := loadRepo(ctx, to); err == nil && dst.Timestamp.Signed.Version > src.Timestamp.Signed.Version {
		return nil, fmt.Errorf("destination has timestamp v%d, newer than the source's v%d: refusing to roll it back", dst.Timestamp.Signed.Version, src.Timestamp.Signed.Version)
	}
	res := &CopyResult{Timestamp: src.Timestamp.Signed.Version}
	for _, prefix := range []string{"targets/", "metadata/"} {
		names, err := from.List(ctx, prefix)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if n == "metadata/timestamp.json" {
				continue
			}
			copied, err := copyObject(ctx, from, to, n)
			if err != nil {
				return nil, err
			}
			if copied {
				res.Copied++
			} else {
				res.Skipped++
			}
		}
	}
	ts, _, err := from.Read(ctx, "metadata/timestamp.json", repo.MaxTimestampSize)
	if err != nil {
		return nil, err
	}
	if err := to.Swap(ctx, "metadata/timestamp.json", dstTag, ts); err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	res.Copied++
	if _, err := loadRepo(ctx, to); err != nil {
		return nil, fmt.Errorf("the copy does not verify: %w", err)
	}
	return res, nil
}

// copyObject copies one immutable object unless the destination has it;
// versioned metadata already there must be identical.
func copyObject(ctx context.Context, from, to Store, name string) (bool, error) {
	if ok, err := to.Exists(ctx, name); err != nil {
		return false, err
	} else if ok {
		if strings.HasPrefix(name, "metadata/") {
			a, _, err1 := from.Read(ctx, name, repo.MaxTargetsSize)
			b, _, err2 := to.Read(ctx, name, repo.MaxTargetsSize)
			if err1 != nil || err2 != nil || string(a) != string(b) {
				return false, fmt.Errorf("%s differs between source and destination: they are different repositories", name)
			}
		}
		return false, nil
	}
	rc, err := from.Get(ctx, name)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp("", "bcupdate-copy-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, rc)
	if err != nil {
		return false, fmt.Errorf("copy %s: %w", name, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	if err := to.PutIfAbsent(ctx, name, tmp, n); err != nil && !errors.Is(err, ErrExists) {
		return false, fmt.Errorf("copy %s: %w", name, err)
	}
	return true, nil
}
