package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

func (a *Agent) cachePath(component string) string {
	return filepath.Join(a.dir, "cache", component, "artifact")
}

// cacheArtifact keeps the installed artifact (a hard link to the staged
// file, so no copy) as the base for the next release's delta.
func (a *Agent) cacheArtifact(component string, rel *Release) {
	if rel.File == "" {
		return
	}
	p := a.cachePath(component)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	tmp := p + ".tmp"
	os.Remove(tmp)
	if err := os.Link(rel.File, tmp); err != nil {
		return
	}
	// No fsync: the cached copy is checked against a patch's base sha256
	// before it is used, so one lost in a power cut only means a full
	// download next time.
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
	}
}

// fileSHA256 hashes a file.
func fileSHA256(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// tryDelta builds the release from a published bsdiff patch and the
// cached base, if the base matches byte for byte. The result is written to
// out and checked against the release's signed length and sha256 exactly
// like a full download (the code signature is checked after, as always).
// A patch that fails is logged and the caller downloads the full artifact
// (ok=false); out is emptied first only if a patch was tried (a partial
// full download that no patch matches is kept, to resume). err is what
// must stop the stage: the context ended, or out could not be emptied.
func (a *Agent) tryDelta(ctx context.Context, s *session, component string, rel *Release, dir string, out *os.File) (sum []byte, ok bool, err error) {
	if rel.Meta == nil || len(rel.Meta.Deltas) == 0 {
		return nil, false, nil
	}
	base := a.cachePath(component)
	baseSum, baseSize, err := fileSHA256(base)
	if err != nil {
		if !isNotExist(err) {
			a.log.Warn("delta base unreadable; downloading the full artifact", "component", component, "err", err)
		}
		return nil, false, nil
	}
	touched := false
	for _, d := range rel.Meta.Deltas {
		if d.BaseSHA256 != baseSum || d.ResultSHA256 != rel.SHA256 || !strings.HasPrefix(d.Patch, path.Dir(rel.Path)+"/") {
			continue
		}
		sum, wrote, err := a.applyDelta(ctx, s, d.Patch, base, baseSize, rel, dir, out)
		touched = touched || wrote
		if err == nil {
			a.log.Info("staged from a delta", "component", component, "version", rel.Version, "from", d.From)
			return sum, true, nil
		}
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		a.log.Warn("delta failed; downloading the full artifact", "component", component, "patch", d.Patch, "err", err)
	}
	if !touched {
		return nil, false, nil
	}
	// A patch wrote into out: start the full download from scratch.
	if err := out.Truncate(0); err != nil {
		return nil, false, err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return nil, false, err
	}
	return nil, false, nil
}

// applyDelta patches base into out; wrote says whether out was touched.
func (a *Agent) applyDelta(ctx context.Context, s *session, patchPath, base string, baseSize int64, rel *Release, dir string, out *os.File) (_ []byte, wrote bool, err error) {
	ptf, err := s.lookup(patchPath)
	if err != nil {
		return nil, wrote, err
	}
	pfile := filepath.Join(dir, "patch.partial")
	pf, err := os.OpenFile(pfile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, wrote, err
	}
	defer func() { pf.Close(); os.Remove(pfile) }()
	if _, err := s.download(ctx, ptf, pf, a.cfg.MaxRate, nil); err != nil {
		return nil, wrote, err
	}
	old, err := os.Open(base)
	if err != nil {
		return nil, wrote, err
	}
	defer old.Close()
	wrote = true
	if err := out.Truncate(0); err != nil {
		return nil, wrote, err
	}
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return nil, wrote, err
	}
	// The result is checked like a download: the signed length and every
	// hash the artifact's target lists (tufspec.go).
	atf, err := s.lookup(rel.Path)
	if err != nil {
		return nil, wrote, err
	}
	th, err := newTargetHasher(atf)
	if err != nil {
		return nil, wrote, err
	}
	cw := &countingWriter{w: io.MultiWriter(out, th)}
	if err := bspatch(old, baseSize, pf, ptf.Length, cw, rel.Length); err != nil {
		return nil, wrote, err
	}
	sum := th.Sum256()
	if cw.n != rel.Length || atf.Length != rel.Length || hex.EncodeToString(sum) != rel.SHA256 {
		return nil, wrote, verifyf("patched result does not match the signed sha256")
	}
	if err := th.verify(); err != nil {
		return nil, wrote, err
	}
	return sum, wrote, nil
}

// countingWriter counts what goes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
