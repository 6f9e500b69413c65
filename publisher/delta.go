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

// patcher makes the bsdiff patches of --delta-from: bsdiffPatcher on this
// machine, a stand-in in tests of the plan.
type patcher interface {
	// ready says whether patches can be made here at all.
	ready() error
	// patch makes the patch from the artifact of version base (published
	// as basePath with sha256 baseSum) to the new artifact: a temporary
	// file and its contents.
	patch(base, basePath, baseSum, version string) (file string, data []byte, err error)
}

// planDeltas plans a bsdiff patch from each --delta-from version's
// artifact to the new one (Debian's bsdiff), as its own TUF target
// <artifact>.from-<version>.bsdiff, and links it from rel. The base is the
// earlier release's artifact of the same file name with the version in it
// replaced (notification-client-1.0.0.zip for …-1.1.0.zip). On an error
// the patches made so far are removed.
func planDeltas(r *repo.Repo, ix *repo.ReleaseIndex, o ReleaseOptions, artPath, sum string, rel *repo.Release, pt patcher) (out []patchFile, err error) {
	if len(o.DeltaFrom) == 0 {
		return nil, nil
	}
	for _, base := range o.DeltaFrom { // a typo is named before a missing tool
		if _, err := repo.ParseVersion(base); err != nil {
			return nil, usagef("--delta-from %w", err)
		}
	}
	if err := pt.ready(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			(&releasePlan{Patches: out}).removePatches()
			out = nil
		}
	}()
	for _, base := range o.DeltaFrom {
		basePath, ok := ix.Releases[base]
		if !ok {
			// Not in the index (a bins repository from before it): the
			// file name of this release with the version replaced.
			name := strings.ReplaceAll(path.Base(artPath), o.Version, base)
			basePath = repo.ArtifactPath(o.Component, o.Platform, base, name)
		}
		tf, ok, err := r.Lookup(basePath)
		if err != nil {
			return out, err
		}
		if !ok {
			return out, usagef("--delta-from %s: %s is not published", base, basePath)
		}
		baseSum := hex.EncodeToString(tf.Hashes["sha256"])
		file, data, err := pt.patch(base, basePath, baseSum, o.Version)
		if err != nil {
			return out, err
		}
		t := repo.NewTarget(artPath+".from-"+base+".bsdiff", data, nil)
		rel.Deltas = append(rel.Deltas, repo.Delta{From: base, BaseSHA256: baseSum, Patch: t.Path, ResultSHA256: sum})
		out = append(out, patchFile{target: t, file: file})
	}
	return out, nil
}

// bsdiffPatcher makes patches to file with bsdiff, from base artifacts
// fetched from the store.
type bsdiffPatcher struct {
	ctx    context.Context
	s      Store
	file   string
	bsdiff string
}

func (b *bsdiffPatcher) ready() error {
	bsdiff, err := exec.LookPath("bsdiff")
	if err != nil {
		return fmt.Errorf("--delta-from needs bsdiff on this machine (Debian: apt-get install bsdiff)")
	}
	b.bsdiff = bsdiff
	return nil
}

func (b *bsdiffPatcher) patch(base, basePath, baseSum, version string) (string, []byte, error) {
	baseFile, err := fetchToTemp(b.ctx, b.s, "targets/"+repo.ConsistentName(basePath, baseSum), baseSum)
	if err != nil {
		return "", nil, fmt.Errorf("--delta-from %s: %w", base, err)
	}
	patch, err := os.CreateTemp("", "bcupdate-patch-*")
	if err != nil {
		os.Remove(baseFile)
		return "", nil, err
	}
	patch.Close()
	cmd := exec.CommandContext(b.ctx, b.bsdiff, baseFile, b.file, patch.Name())
	msg, err := cmd.CombinedOutput()
	os.Remove(baseFile)
	if err != nil {
		os.Remove(patch.Name())
		return "", nil, fmt.Errorf("bsdiff %s -> %s: %v %s", base, version, err, msg)
	}
	data, err := os.ReadFile(patch.Name())
	if err != nil {
		os.Remove(patch.Name())
		return "", nil, err
	}
	return patch.Name(), data, nil
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
