package publisher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"

	"github.com/beckmanconnect/bcupdate/repo"
)

type patchFile struct {
	target repo.Target
	file   string
}

// makeDeltas makes a bsdiff patch from each --delta-from version's
// artifact to the new one (Debian's bsdiff), as its own TUF target
// <artifact>.from-<version>.bsdiff, and links it from rel. The base is the
// earlier release's artifact of the same file name with the version in it
// replaced (notification-client-1.0.0.zip for …-1.1.0.zip).
func makeDeltas(ctx context.Context, s Store, r *repo.Repo, ix *repo.ReleaseIndex, o ReleaseOptions, artPath, sum string, rel *repo.Release) ([]patchFile, error) {
	if len(o.DeltaFrom) == 0 {
		return nil, nil
	}
	bsdiff, err := exec.LookPath("bsdiff")
	if err != nil {
		return nil, fmt.Errorf("--delta-from needs bsdiff on this machine (Debian: apt-get install bsdiff)")
	}
	var out []patchFile
	for _, base := range o.DeltaFrom {
		if _, err := repo.ParseVersion(base); err != nil {
			return nil, usagef("--delta-from: %v", err)
		}
		basePath, ok := ix.Releases[base]
		if !ok {
			// Not in the index (a bins repository from before it): the
			// file name of this release with the version replaced.
			name := strings.ReplaceAll(path.Base(artPath), o.Version, base)
			basePath = repo.ArtifactPath(o.Component, o.Platform, base, name)
		}
		tf, ok, err := r.Lookup(basePath)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, usagef("--delta-from %s: %s is not published", base, basePath)
		}
		baseSum := hex.EncodeToString(tf.Hashes["sha256"])
		baseFile, err := fetchToTemp(ctx, s, "targets/"+repo.ConsistentName(basePath, baseSum), baseSum)
		if err != nil {
			return nil, fmt.Errorf("--delta-from %s: %w", base, err)
		}
		patch, err := os.CreateTemp("", "bcupdate-patch-*")
		if err != nil {
			os.Remove(baseFile)
			return nil, err
		}
		patch.Close()
		cmd := exec.CommandContext(ctx, bsdiff, baseFile, o.File, patch.Name())
		msg, err := cmd.CombinedOutput()
		os.Remove(baseFile)
		if err != nil {
			os.Remove(patch.Name())
			return nil, fmt.Errorf("bsdiff %s -> %s: %v %s", base, o.Version, err, msg)
		}
		data, err := os.ReadFile(patch.Name())
		if err != nil {
			return nil, err
		}
		pt := repo.NewTarget(artPath+".from-"+base+".bsdiff", data, nil)
		rel.Deltas = append(rel.Deltas, repo.Delta{From: base, BaseSHA256: baseSum, Patch: pt.Path, ResultSHA256: sum})
		out = append(out, patchFile{target: pt, file: patch.Name()})
	}
	return out, nil
}

// fetchToTemp copies an object to a temporary file and checks its sha256.
func fetchToTemp(ctx context.Context, s Store, name, sum string) (string, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	f, err := os.CreateTemp("", "bcupdate-base-*")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), rc); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	f.Close()
	if hex.EncodeToString(h.Sum(nil)) != sum {
		os.Remove(f.Name())
		return "", fmt.Errorf("%w: %s does not match its metadata", repo.ErrVerification, name)
	}
	return f.Name(), nil
}
