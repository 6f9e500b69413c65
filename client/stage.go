package client

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

func (a *Agent) selectComponents(only string) ([]string, error) {
	if only == "" {
		return a.cfg.Components, nil
	}
	if !slices.Contains(a.cfg.Components, only) {
		return nil, usagef("--component %s is not one of this agent's components (%s); bcagent config set components adds one", only, strings.Join(a.cfg.Components, ", "))
	}
	return []string{only}, nil
}

// Stage checks the repository and downloads every available release (or
// only's), verifying length and sha256 as it streams to disk and then the
// code signature, and moves it into staging/. It installs nothing.
// Components are downloaded at the same time (at most maxParallel; one
// at a time under a --max-rate cap, which is the PC's, not a download's).
// A component that fails keeps its old state and its error is returned
// (the first, in the configured order); the others are staged.
func (a *Agent) Stage(ctx context.Context, only string) (*CheckReport, error) {
	names, err := a.selectComponents(only)
	if err != nil {
		return nil, err
	}
	return a.stageComponents(ctx, names)
}

func (a *Agent) stageComponents(ctx context.Context, names []string) (*CheckReport, error) {
	defer a.beginBatch(ctx)()
	mark := a.markBatch()
	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	s, err := a.check(ctx, st)
	if err != nil {
		return nil, a.checkFailed(err)
	}
	a.noteCheck(nil)
	var todo []string
	for _, name := range names {
		if c := st.Components[name]; c.Available != nil && c.Staged == nil {
			todo = append(todo, name)
		}
	}
	workers := maxParallel
	if a.cfg.MaxRate > 0 {
		workers = 1
	}
	staged := make(map[string]*Release, len(todo))
	failures := make(map[string]error, len(todo))
	results := make([]*Release, len(todo))
	errs := make([]error, len(todo))
	forEach(len(todo), workers, func(i int) {
		results[i], errs[i] = a.stage(ctx, s, todo[i], st.Components[todo[i]].Available)
	})
	for i, name := range todo {
		staged[name], failures[name] = results[i], errs[i]
	}
	if a.bundle != nil && slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
		// An import is all or nothing (bundle_import.go): one component
		// that fails refuses the bundle. Nothing the check and stage
		// recorded stands (no "staged" entry or notification for a
		// component whose files are removed here), state.json is not
		// saved, and staging/ keeps nothing of any component the import
		// tried (partial downloads and markers included); then the
		// failures alone are recorded.
		a.rollbackBatch(mark)
		for _, name := range todo {
			a.dropStaged(name, &ComponentState{})
		}
		var first error
		for _, name := range todo {
			if err := failures[name]; err != nil {
				v := st.Components[name].Available.Version
				first = cmp.Or(first, a.failed(fmt.Errorf("stage %s %s: %w", name, v, err), name, v))
			}
		}
		return nil, first
	}
	var first, waiting error
	for _, name := range names {
		c := st.Components[name]
		if c.Available == nil {
			continue
		}
		newly := c.Staged == nil
		if newly {
			if err := failures[name]; err != nil {
				err = a.failed(fmt.Errorf("stage %s %s: %w", name, c.Available.Version, err), name, c.Available.Version)
				first = cmp.Or(first, err)
				continue
			}
			c.Staged, c.LastError = staged[name], ""
		}
		pending, perr := a.pendingFeatures(st, name, c.Staged)
		waits := len(pending) > 0 || perr != nil
		if newly {
			if err := a.transition(name, c, Staged, occasion{Version: c.Staged.Version, Detail: c.Staged.Path, Quiet: waits,
				Message: fmt.Sprintf("%s %s is downloaded, verified and ready to install", name, c.Staged.Version)}); err != nil {
				return nil, err
			}
		}
		if waits {
			var ids []string
			for _, f := range pending {
				ids = append(ids, f.ID)
			}
			why := a.authorizationRequired(name, c.Staged.Version, ids)
			if perr != nil {
				why = &waitError{detail: perr.Error(), err: perr}
			}
			if err := a.markAwaiting(name, c, why); err != nil {
				return nil, err
			}
			waiting = errors.Join(waiting, why)
		}
	}
	if err := a.saveState(st); err != nil {
		return nil, err
	}
	if first != nil {
		return nil, first
	}
	return a.report(s, st), waiting
}

// batchMark is what the current batch held at a moment (markBatch), to
// go back to (rollbackBatch).
type batchMark struct {
	events, handed int
	notes          []Notification
	loaded, dirty  bool
}

func (a *Agent) markBatch() batchMark {
	b := a.batch
	if b == nil {
		return batchMark{}
	}
	return batchMark{events: len(b.events), handed: len(b.handed), notes: slices.Clone(b.notes), loaded: b.loaded, dirty: b.dirty}
}

// rollbackBatch forgets the audit events and notification changes the
// current batch collected since m.
func (a *Agent) rollbackBatch(m batchMark) {
	if b := a.batch; b != nil {
		b.events, b.handed = b.events[:m.events], b.handed[:m.handed]
		b.notes, b.loaded, b.dirty = m.notes, m.loaded, m.dirty
	}
}

// dropStaged forgets a component's staged release and removes its files,
// through the state root: a staging/ that is a symlink out of the state
// directory is left alone, not followed.
func (a *Agent) dropStaged(component string, c *ComponentState) {
	c.Staged = nil
	root, err := a.openRoot()
	if err != nil {
		a.log.Warn("dropping staged files", "component", component, "err", err)
		return
	}
	defer root.Close()
	if err := a.removeStaging(root, component); err != nil {
		a.log.Warn("dropping staged files", "component", component, "err", a.confined(root, filepath.Join(stagingRoot, component), err))
	}
}

// removeStaging removes staging/<component>. During an import the first
// removal parks the directory instead (bundleSource.park), so that a
// refused bundle gives back what was staged before it.
func (a *Agent) removeStaging(root *os.Root, component string) error {
	if a.bundle != nil {
		return a.bundle.park(root, component)
	}
	return root.RemoveAll(filepath.Join(stagingRoot, component))
}

// stage downloads and verifies one release into staging/<component>/<version>/.
// Every file it creates, resumes, reads, renames or removes is opened
// through the state root (root.go).
func (a *Agent) stage(ctx context.Context, s *session, component string, rel *Release) (_ *Release, err error) {
	root, err := a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	compName := filepath.Join(stagingRoot, component)
	dirName := filepath.Join(compName, rel.Version)
	marker := filepath.Join(dirName, "release.sha256")
	// Keep a partial download of this very release to resume it; anything
	// else in staging is stale. An import starts afresh (reading the
	// bundle is cheap), so that it never writes into what it may have to
	// give back.
	if b, rerr := readFileRoot(root, marker, 128); a.bundle != nil || rerr != nil || strings.TrimSpace(string(b)) != rel.SHA256 {
		if err := a.removeStaging(root, component); err != nil {
			return nil, a.confined(root, compName, err)
		}
	}
	if err := root.MkdirAll(dirName, 0o700); err != nil {
		return nil, a.confined(root, dirName, err)
	}
	// Not fsynced: a marker lost in a power cut only means the partial
	// download it names is not resumed but started again.
	if err := replaceFileRoot(root, marker, []byte(rel.SHA256+"\n")); err != nil {
		return nil, a.confined(root, marker, err)
	}
	defer func() {
		// A network failure keeps the partial file to resume; anything
		// that did not verify goes.
		if err != nil && errors.Is(err, ErrVerification) {
			a.removeStaging(root, component)
		}
	}()
	tf, err := s.lookup(rel.Path)
	if err != nil {
		return nil, err
	}
	if sha, err := targetSHA256(tf); err != nil || sha != rel.SHA256 || tf.Length != rel.Length {
		return nil, verifyf("%s changed between check and stage", rel.Path)
	}
	name := path.Base(rel.Path)
	if err := repo.ValidateFileName(name); err != nil {
		return nil, verifyf("%s: %v", rel.Path, err)
	}
	final := filepath.Join(dirName, name)
	partial := final + ".partial"
	f, err := root.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, a.confined(root, partial, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", filepath.Join(a.dir, partial))
	}
	var progress func(done, total int64)
	if a.progress != nil {
		// Components download at the same time; the callback is told
		// about one at a time.
		progress = func(done, total int64) {
			a.progressMu.Lock()
			defer a.progressMu.Unlock()
			a.progress(component, done, total)
		}
	}
	sum, ok, err := a.tryDelta(ctx, s, component, rel, filepath.Join(a.dir, dirName), f)
	if err != nil {
		return nil, err
	}
	if !ok {
		sum, err = s.download(ctx, tf, f, a.cfg.MaxRate, progress)
	}
	// No fsync here: a staged file is only ever used after install has read
	// it again, checked it against the signed sha256 and fsynced it (see
	// verifyStaged), so a power cut that loses staged bytes costs a second
	// download, never a broken install. Between stage and the apply window
	// the kernel writes the bytes back on its own.
	if err != nil {
		return nil, err
	}
	var sig []byte
	if rel.Meta.Codesign == repo.CodesignCMS {
		sig, _, err = s.fetchSmall(ctx, repo.SignaturePath(rel.Path), signer.MaxSignatureSize)
		if errors.Is(err, errTargetNotFound) {
			return nil, verifyf("%s has no signed code signature %s", rel.Path, repo.SignaturePath(rel.Path))
		}
		if err != nil {
			return nil, err
		}
	}
	// One pass over the bytes: the sha256 computed while downloading is
	// both the TUF check and, for a sha256 CMS signature, its digest.
	if _, err := a.verifyCodeDigest(f, sig, rel, sum); err != nil {
		return nil, err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return nil, err
	}
	// Neither the signature nor the names are fsynced either: a staged
	// copy that a power cut spoiled or lost, its signature included, is
	// dropped by apply and downloaded again (prepare, apply.go).
	if sig != nil {
		if err := replaceFileRoot(root, final+repo.SignatureSuffix, sig); err != nil {
			return nil, a.confined(root, final+repo.SignatureSuffix, err)
		}
	}
	if err := root.Rename(partial, final); err != nil {
		return nil, a.confined(root, final, err)
	}
	out := *rel
	out.File = filepath.Join(a.dir, final)
	return &out, nil
}

// verifyStaged checks a staged file against the release's sha256 and
// length and then its code signature (detached CMS or embedded
// Authenticode), with the CRLs the repository published, reading the file
// once for CMS, and makes it durable: stage does not fsync, this does,
// before anything is installed from it. The file is opened through the
// state root and must lie below <state>/staging.
func (a *Agent) verifyStaged(file string, sig []byte, rel *Release) (*signer.Result, error) {
	name, err := a.stagedName(file)
	if err != nil {
		// state.json names a file elsewhere: drop it and download again.
		return nil, fmt.Errorf("%w: %s: %w", ErrVerification, rel.Path, err)
	}
	root, err := a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// Read-write: Windows flushes only handles opened for writing.
	f, err := root.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, a.confined(root, name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, verifyf("%s: staged file %s is not a regular file", rel.Path, file)
	}
	hw := newHashingWriter(io.Discard)
	_, err = io.CopyBuffer(hw, f, make([]byte, 1<<20))
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return nil, err
	}
	if hw.n != rel.Length || hw.sum() != rel.SHA256 {
		return nil, verifyf("%s: local file %s does not match the signed sha256 (it was changed on disk?)", rel.Path, file)
	}
	return a.verifyCodeDigest(f, sig, rel, hw.h.Sum(nil))
}

// verifyCodeDigest verifies the code signature of f (a staged file opened
// through the state root) whose sha256, equal to the signed one, is
// already known. It may read f again from the start.
func (a *Agent) verifyCodeDigest(f *os.File, sig []byte, rel *Release, sha []byte) (*signer.Result, error) {
	trust, err := a.trustWithCRLs()
	if err != nil {
		return nil, err
	}
	var res *signer.Result
	switch rel.Meta.Codesign {
	case repo.CodesignCMS:
		res, err = trust.VerifyDetachedDigest(func(h crypto.Hash) ([]byte, error) {
			if h == crypto.SHA256 {
				return sha, nil
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			d := h.New()
			if _, err := io.Copy(d, f); err != nil {
				return nil, err
			}
			return d.Sum(nil), nil
		}, sig)
	case repo.CodesignAuthenticode:
		if _, err = f.Seek(0, io.SeekStart); err == nil {
			res, err = trust.VerifyAuthenticode(f)
		}
	default:
		err = fmt.Errorf("code-signing kind %q is not supported (want cms or authenticode)", rel.Meta.Codesign)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrVerification, rel.Path, err)
	}
	return res, nil
}

func (a *Agent) crlDir() string { return filepath.Join(a.dir, "tuf", "crl") }

// trustWithCRLs is the trust directory plus the CRLs the last verified
// refresh brought (saved by saveCRLs).
func (a *Agent) trustWithCRLs() (*signer.Trust, error) {
	entries, err := os.ReadDir(a.crlDir())
	if err != nil && !isNotExist(err) {
		return nil, err
	}
	crls := map[string][]byte{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".crl") {
			continue
		}
		data, err := readFileLimited(filepath.Join(a.crlDir(), e.Name()), signer.MaxCRLSize)
		if err != nil {
			return nil, err
		}
		crls[repo.CRLPrefix+e.Name()] = data
	}
	t, err := a.trust.WithCRLs(crls)
	if err != nil {
		return nil, verifyf("%v", err)
	}
	return t, nil
}

// saveCRLs downloads the repository's trust/crl/ targets (verified against
// their TUF hashes) into tuf/crl/, replacing what was there.
func (a *Agent) saveCRLs(ctx context.Context, s *session) error {
	top := s.up.GetTrustedMetadataSet().Targets[metadata.TARGETS]
	want := map[string]bool{}
	for p := range top.Signed.Targets {
		if !strings.HasPrefix(p, repo.CRLPrefix) {
			continue
		}
		name := strings.TrimPrefix(p, repo.CRLPrefix)
		if strings.Contains(name, "/") || repo.ValidateTargetPath(name) != nil {
			return verifyf("CRL target %s has a bad name", p)
		}
		data, _, err := s.fetchSmall(ctx, p, signer.MaxCRLSize)
		if err != nil {
			return err
		}
		if _, err := signer.ParseCRL(data, p); err != nil {
			return verifyf("%v", err)
		}
		if err := os.MkdirAll(a.crlDir(), 0o700); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(a.crlDir(), name), data, 0o600); err != nil {
			return err
		}
		want[name] = true
	}
	entries, _ := os.ReadDir(a.crlDir())
	for _, e := range entries {
		if !want[e.Name()] {
			os.Remove(filepath.Join(a.crlDir(), e.Name()))
		}
	}
	return nil
}
