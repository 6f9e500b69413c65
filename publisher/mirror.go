package publisher

// A site mirror (issue 18): a downstream copy of a repository that a lab
// serves to its PCs with `bcpublish serve`. The mirror trusts nothing it
// downloads: it starts from a trusted root file (like an agent's --root)
// and verifies everything with go-tuf's trustedmetadata, exactly the client
// workflow an agent runs (5.3 root chain, 5.4 timestamp, 5.5 snapshot, 5.6
// targets and the hashed bins), with rollback protection against the
// mirror's own previous state and freeze protection (expired metadata is
// refused). Only then does anything become visible downstream, in the
// order a publish writes: target files first, then root versions, bins,
// targets, snapshot, and timestamp.json last, so an agent reading the
// mirror mid-sync sees the old consistent repository or the new one.
//
// Agents do not trust the mirror either: every signature is the
// publisher's and agents verify for themselves. The mirror's own checks
// are what keep it from serving, and from overwriting a good state with,
// something an agent would refuse.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/repo"
)

// MirrorSource is the upstream repository a mirror reads: a store
// (directory, S3) or a repository served over HTTP(S) (HTTPSource).
//
// Read returns a small object of at most limit bytes; a missing object is
// an error wrapping fs.ErrNotExist (an answer, not a failure). Open
// streams an object from byte offset off; start is where the body really
// begins (off, or 0 from a source that cannot skip ahead), so a partial
// download is resumed or restarted.
type MirrorSource interface {
	Read(ctx context.Context, name string, limit int64) ([]byte, error)
	Open(ctx context.Context, name string, off int64) (body io.ReadCloser, start int64, err error)
}

// StoreSource reads an upstream repository kept in a Store.
type StoreSource struct{ Store Store }

var _ MirrorSource = StoreSource{}

// Read reads a small object.
func (s StoreSource) Read(ctx context.Context, name string, limit int64) ([]byte, error) {
	b, _, err := s.Store.Read(ctx, name, limit)
	return b, err
}

// Open opens an object, skipping to off when the store's reader can seek
// (a directory) and from the start otherwise.
func (s StoreSource) Open(ctx context.Context, name string, off int64) (io.ReadCloser, int64, error) {
	rc, err := s.Store.Get(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	if sk, ok := rc.(io.Seeker); ok && off > 0 {
		if _, err := sk.Seek(off, io.SeekStart); err == nil {
			return rc, off, nil
		}
		if _, err := sk.Seek(0, io.SeekStart); err != nil {
			rc.Close()
			return nil, 0, err
		}
	}
	return rc, 0, nil
}

// MirrorOptions configure a sync.
type MirrorOptions struct {
	// Root is the trusted root metadata (a root.json the operator got
	// from the publisher, as for bcagent init --root).
	Root []byte
	// Components limits which components' target files are copied (nil:
	// all). Metadata is always copied whole: it is signed whole.
	// Repository-wide targets (policy/, trust/) are always copied.
	Components []string
	// WorkDir keeps partial downloads (resumed by the next sync) and the
	// mirror's own record of what it last completed.
	WorkDir string
	// Parallel target downloads (0: 4).
	Parallel int
	// Now is the time expiry is judged at (zero: the current time).
	Now time.Time
	Log *slog.Logger
}

// MirrorResult says what a sync did.
type MirrorResult struct {
	// Timestamp is the timestamp version the mirror serves now; Previous
	// the one it served before (0: none).
	Timestamp, Previous int64
	// Changed: the mirror now serves a newer repository state.
	Changed bool
	// TargetsCopied and TargetBytes: target files fetched this sync;
	// TargetsPresent: wanted and already on the mirror; TargetsSkipped:
	// left out by Components.
	TargetsCopied, TargetsPresent, TargetsSkipped int
	TargetBytes                                   int64
	// MetadataFiles and MetadataBytes: metadata fetched from upstream.
	MetadataFiles int
	MetadataBytes int64
}

// Size limits on what a mirror downloads (metadata; targets are bounded by
// their signed length).
const (
	mirrorMaxRoot      = repo.MaxRootSize
	mirrorMaxTimestamp = repo.MaxTimestampSize
	mirrorMaxSnapshot  = repo.MaxSnapshotSize
	mirrorMaxTargets   = repo.MaxTargetsSize
	maxMirrorRoots     = 1024
)

// mirrorState is <work>/mirror.json: what the last complete sync left on
// the mirror (not trusted for security, only to know whether the target
// files of unchanged bins are all there).
type mirrorState struct {
	Timestamp  int64    `json:"timestamp"`
	Components []string `json:"components"`
}

// mirrorSync is one sync in progress.
type mirrorSync struct {
	from    MirrorSource
	to      Store
	o       MirrorOptions
	log     *slog.Logger
	trusted *trustedmetadata.TrustedMetadata
	res     MirrorResult
	mu      sync.Mutex // res counters from parallel downloads

	// prevSnapshot is the mirror's own previous snapshot (nil: none that
	// verifies): bins at the same version are not fetched again.
	prevSnapshot *metadata.Metadata[metadata.SnapshotType]
	// writes are the metadata files to publish, in order.
	roots, bins    []repo.File
	top, snap      []repo.File
	timestamp      []byte
	timestampTag   string
	fullPass       bool
	wantComponents map[string]bool
}

// Mirror brings the downstream store to the upstream's current state, or
// fails leaving the downstream's previous state as it was. A failure of
// verification wraps repo.ErrVerification (exit code 3); it names the file
// and what was wrong.
func Mirror(ctx context.Context, from MirrorSource, to Store, o MirrorOptions) (*MirrorResult, error) {
	if len(o.Root) == 0 {
		return nil, usagef("--root is required (the repository's trusted root.json)")
	}
	if o.WorkDir == "" {
		return nil, usagef("no work directory for partial downloads")
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	m := &mirrorSync{from: from, to: to, o: o, log: o.Log}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	for _, c := range o.Components {
		if err := repo.ValidateName("component", c); err != nil {
			return nil, usagef("--component: %v", err)
		}
		if m.wantComponents == nil {
			m.wantComponents = map[string]bool{}
		}
		m.wantComponents[c] = true
	}
	trusted, err := trustedmetadata.New(o.Root)
	if err != nil {
		return nil, usagef("--root: not a valid root signed by its own keys: %v", err)
	}
	if !o.Now.IsZero() {
		trusted.RefTime = o.Now.UTC()
	}
	m.trusted = trusted
	if err := os.MkdirAll(o.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	if err := m.run(ctx); err != nil {
		return nil, err
	}
	return &m.res, nil
}

func (m *mirrorSync) run(ctx context.Context) error {
	if err := m.updateRoots(ctx); err != nil {
		return err
	}
	newer, err := m.updateTimestamp(ctx)
	if err != nil {
		return err
	}
	state := m.readState()
	m.fullPass = state == nil || state.Timestamp != m.res.Previous || !slices.Equal(state.Components, m.componentList()) || m.prevSnapshot == nil
	if !newer && !m.fullPass {
		m.res.Timestamp = m.res.Previous
		return nil
	}
	targets, err := m.updateTargets(ctx)
	if err != nil {
		return err
	}
	if err := m.fetchTargets(ctx, targets); err != nil {
		return err
	}
	if err := m.publish(ctx); err != nil {
		return err
	}
	m.res.Timestamp = m.trusted.Timestamp.Signed.Version
	m.res.Changed = newer
	return m.writeState(mirrorState{Timestamp: m.res.Timestamp, Components: m.componentList()})
}

func (m *mirrorSync) componentList() []string {
	out := slices.Sorted(func(yield func(string) bool) {
		for c := range m.wantComponents {
			if !yield(c) {
				return
			}
		}
	})
	if out == nil {
		out = []string{}
	}
	return out
}

// verifyErr makes a refusal of go-tuf's trustedmetadata (or of the
// mirror's own checks) a verification failure naming the file.
func verifyErr(file string, err error) error {
	return fmt.Errorf("%w: upstream %s: %v; this may be an attack, and the mirror keeps serving what it had", repo.ErrVerification, file, err)
}

// fetchMeta reads a metadata file: from the mirror if it already holds
// that exact file (check returns nil on it), else from upstream. A file
// downloaded is counted.
func (m *mirrorSync) fetchMeta(ctx context.Context, name string, limit int64, check func([]byte) error) ([]byte, error) {
	if b, _, err := m.to.Read(ctx, "metadata/"+name, limit); err == nil && check(b) == nil {
		return b, nil
	}
	b, err := m.from.Read(ctx, "metadata/"+name, limit)
	if err != nil {
		return nil, err
	}
	m.res.MetadataFiles++
	m.res.MetadataBytes += int64(len(b))
	return b, nil
}

// updateRoots walks the root chain (client workflow 5.3): from the trusted
// root through the versions the mirror already holds, then upstream's
// newer ones until one is missing. Root versions before the trusted one
// that the mirror lacks are copied too (agents may start from an older
// root), each checked as the one the next was signed by.
func (m *mirrorSync) updateRoots(ctx context.Context) error {
	first := m.trusted.Root.Signed.Version
	local := true
	for v := first + 1; v <= first+maxMirrorRoots; v++ {
		name := fmt.Sprintf("%d.root.json", v)
		var data []byte
		var err error
		if local {
			data, _, err = m.to.Read(ctx, "metadata/"+name, mirrorMaxRoot)
			if errors.Is(err, fs.ErrNotExist) {
				local = false
			} else if err != nil {
				return fmt.Errorf("mirror: %w", err)
			} else if _, err := m.trusted.UpdateRoot(data); err != nil {
				return fmt.Errorf("%w: the mirror's own metadata/%s does not verify against --root: %v (is --to a mirror of another repository?)", repo.ErrVerification, name, err)
			} else {
				continue
			}
		}
		data, err = m.from.Read(ctx, "metadata/"+name, mirrorMaxRoot)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("upstream: %w", err)
		}
		m.res.MetadataFiles++
		m.res.MetadataBytes += int64(len(data))
		if _, err := m.trusted.UpdateRoot(data); err != nil {
			return verifyErr("metadata/"+name, err)
		}
		m.roots = append(m.roots, repo.File{Name: name, Data: data})
	}
	// The trusted root itself, as upstream has it (the file given may
	// have been re-encoded): the same version, signed by the trusted keys.
	var earlier []repo.File
	next, err := metadata.Root().FromBytes(m.o.Root)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%d.root.json", first)
	if ok, err := m.to.Exists(ctx, "metadata/"+name); err != nil {
		return fmt.Errorf("mirror: %w", err)
	} else if !ok {
		data, err := m.from.Read(ctx, "metadata/"+name, mirrorMaxRoot)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("upstream has no metadata/%s (is it a repository, and is --root its root?): %w", name, err)
		}
		if err != nil {
			return fmt.Errorf("upstream: metadata/%s: %w", name, err)
		}
		m.res.MetadataFiles++
		m.res.MetadataBytes += int64(len(data))
		same, err := metadata.Root().FromBytes(data)
		if err != nil {
			return verifyErr("metadata/"+name, err)
		}
		if same.Signed.Version != first {
			return verifyErr("metadata/"+name, fmt.Errorf("it has version %d", same.Signed.Version))
		}
		if err := next.VerifyDelegate(metadata.ROOT, same); err != nil {
			return verifyErr("metadata/"+name, fmt.Errorf("it is not the trusted root given with --root: %v", err))
		}
		earlier = append(earlier, repo.File{Name: name, Data: data})
	}
	// Earlier roots: root v is genuine if it is signed by its own root
	// keys and root v+1 is signed by them.
	for v := first - 1; v >= 1; v-- {
		name := fmt.Sprintf("%d.root.json", v)
		if ok, err := m.to.Exists(ctx, "metadata/"+name); err != nil {
			return fmt.Errorf("mirror: %w", err)
		} else if ok {
			break
		}
		data, err := m.from.Read(ctx, "metadata/"+name, mirrorMaxRoot)
		if err != nil {
			return fmt.Errorf("upstream: metadata/%s: %w", name, err)
		}
		m.res.MetadataFiles++
		m.res.MetadataBytes += int64(len(data))
		prev, err := metadata.Root().FromBytes(data)
		if err != nil {
			return verifyErr("metadata/"+name, err)
		}
		if prev.Signed.Version != v {
			return verifyErr("metadata/"+name, fmt.Errorf("it has version %d", prev.Signed.Version))
		}
		if err := prev.VerifyDelegate(metadata.ROOT, prev); err != nil {
			return verifyErr("metadata/"+name, err)
		}
		if err := prev.VerifyDelegate(metadata.ROOT, next); err != nil {
			return verifyErr("metadata/"+name, fmt.Errorf("root v%d is not signed by its keys: %v", v+1, err))
		}
		earlier = append(earlier, repo.File{Name: name, Data: data})
		next = prev
	}
	slices.Reverse(earlier)
	m.roots = append(earlier, m.roots...)
	if !m.trusted.Root.Signed.ConsistentSnapshot {
		return verifyErr(fmt.Sprintf("metadata/%d.root.json", m.trusted.Root.Signed.Version), errors.New("root does not use consistent snapshots"))
	}
	return nil
}

// updateTimestamp loads the mirror's own timestamp and snapshot as the
// rollback baseline (client workflow 5.4.3: an old, even expired, trusted
// timestamp), then upstream's timestamp. It reports whether upstream has a
// newer one.
func (m *mirrorSync) updateTimestamp(ctx context.Context) (bool, error) {
	local, tag, err := m.to.Read(ctx, "metadata/timestamp.json", mirrorMaxTimestamp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, fmt.Errorf("mirror: %w", err)
	default:
		m.timestampTag = tag
		// An expired timestamp is still loaded (for rollback checks);
		// one that does not verify (keys rotated since) is not used.
		if _, err := m.trusted.UpdateTimestamp(local); m.trusted.Timestamp != nil && (err == nil || isExpired(err)) {
			m.res.Previous = m.trusted.Timestamp.Signed.Version
			m.loadPrevSnapshot(ctx)
		} else {
			m.log.Warn("the mirror's own timestamp.json does not verify; it is replaced", "err", err)
		}
	}
	data, err := m.from.Read(ctx, "metadata/timestamp.json", mirrorMaxTimestamp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("upstream has no metadata/timestamp.json: %w", err)
		}
		return false, fmt.Errorf("upstream: %w", err)
	}
	m.res.MetadataFiles++
	m.res.MetadataBytes += int64(len(data))
	if m.trusted.Timestamp != nil && bytes.Equal(data, local) {
		// The same file: nothing new (an expired one is refused here too).
		if m.trusted.Timestamp.Signed.IsExpired(m.trusted.RefTime) {
			return false, verifyErr("metadata/timestamp.json", fmt.Errorf("timestamp.json v%d expired at %s (a frozen repository)", m.trusted.Timestamp.Signed.Version, m.trusted.Timestamp.Signed.Expires.UTC().Format(time.RFC3339)))
		}
		m.timestamp = data
		return false, nil
	}
	if _, err := m.trusted.UpdateTimestamp(data); err != nil {
		var eq *metadata.ErrEqualVersionNumber
		if errors.As(err, &eq) {
			return false, verifyErr("metadata/timestamp.json", fmt.Errorf("it has the version the mirror serves (v%d) with other content", m.trusted.Timestamp.Signed.Version))
		}
		return false, verifyErr("metadata/timestamp.json", explainTUF(err))
	}
	m.timestamp = data
	return true, nil
}

func isExpired(err error) bool {
	var e *metadata.ErrExpiredMetadata
	return errors.As(err, &e)
}

// explainTUF says what a go-tuf refusal means in our words.
func explainTUF(err error) error {
	var bv *metadata.ErrBadVersionNumber
	var ex *metadata.ErrExpiredMetadata
	var us *metadata.ErrUnsignedMetadata
	var lh *metadata.ErrLengthOrHashMismatch
	switch {
	case errors.As(err, &bv):
		return fmt.Errorf("older than what the mirror has (rollback): %v", err)
	case errors.As(err, &ex):
		return fmt.Errorf("expired (freeze): %v", err)
	case errors.As(err, &us):
		return fmt.Errorf("bad signature: %v", err)
	case errors.As(err, &lh):
		return fmt.Errorf("does not match the length and hashes its parent lists (mix-and-match): %v", err)
	}
	return err
}

// loadPrevSnapshot loads the mirror's own snapshot as the rollback
// baseline of the next (5.5.5) and to know which bins changed.
func (m *mirrorSync) loadPrevSnapshot(ctx context.Context) {
	meta := m.trusted.Timestamp.Signed.Meta["snapshot.json"]
	if meta == nil {
		return
	}
	data, _, err := m.to.Read(ctx, fmt.Sprintf("metadata/%d.snapshot.json", meta.Version), mirrorMaxSnapshot)
	if err != nil || meta.VerifyLengthHashes(data) != nil {
		return
	}
	snap, err := metadata.Snapshot().FromBytes(data)
	if err != nil || m.trusted.Root.VerifyDelegate(metadata.SNAPSHOT, snap) != nil || snap.Signed.Version != meta.Version {
		return
	}
	m.prevSnapshot = snap
}

// updateTargets verifies upstream's snapshot, targets and every bin that
// changed (or, on a full pass, every bin) and returns the targets whose
// files the mirror must hold.
func (m *mirrorSync) updateTargets(ctx context.Context) (map[string]*metadata.TargetFiles, error) {
	tm := m.trusted.Timestamp.Signed.Meta["snapshot.json"]
	if tm == nil {
		return nil, verifyErr("metadata/timestamp.json", errors.New("it does not name snapshot.json"))
	}
	name := fmt.Sprintf("%d.snapshot.json", tm.Version)
	data, err := m.fetchMeta(ctx, name, mirrorMaxSnapshot, tm.VerifyLengthHashes)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	if m.prevSnapshot != nil {
		// Rollback of any role's version (5.5.5) is checked against the
		// mirror's previous snapshot, as trusted.
		if err := checkSnapshotRollback(m.prevSnapshot, data); err != nil {
			return nil, verifyErr("metadata/"+name, err)
		}
	}
	if _, err := m.trusted.UpdateSnapshot(data, false); err != nil {
		return nil, verifyErr("metadata/"+name, explainTUF(err))
	}
	m.snap = append(m.snap, repo.File{Name: name, Data: data})
	snap := m.trusted.Snapshot.Signed
	tmeta := snap.Meta["targets.json"]
	if tmeta == nil {
		return nil, verifyErr("metadata/"+name, errors.New("it does not name targets.json"))
	}
	name = fmt.Sprintf("%d.targets.json", tmeta.Version)
	data, err = m.fetchMeta(ctx, name, mirrorMaxTargets, tmeta.VerifyLengthHashes)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	targets, err := m.trusted.UpdateTargets(data)
	if err != nil {
		return nil, verifyErr("metadata/"+name, explainTUF(err))
	}
	m.top = append(m.top, repo.File{Name: name, Data: data})
	want := map[string]*metadata.TargetFiles{}
	if m.fullPass || m.changed("targets.json") {
		if err := m.collect(want, "targets.json", targets.Signed.Targets, nil); err != nil {
			return nil, err
		}
	}
	d := targets.Signed.Delegations
	if d == nil {
		return want, nil
	}
	if len(d.Roles) > 0 || d.SuccinctRoles == nil {
		return nil, verifyErr("metadata/"+name, errors.New("it delegates to roles other than hashed bins, which a mirror does not copy"))
	}
	sr := d.SuccinctRoles
	for _, bin := range sr.GetRoles() {
		file := bin + ".json"
		meta := snap.Meta[file]
		if meta == nil {
			return nil, verifyErr("metadata/"+m.snap[0].Name, fmt.Errorf("it does not list %s, which targets delegates to", file))
		}
		if !m.fullPass && !m.changed(file) {
			continue
		}
		vname := fmt.Sprintf("%d.%s", meta.Version, file)
		data, err := m.fetchMeta(ctx, vname, mirrorMaxTargets, meta.VerifyLengthHashes)
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		b, err := m.trusted.UpdateDelegatedTargets(data, bin, metadata.TARGETS)
		if err != nil {
			return nil, verifyErr("metadata/"+vname, explainTUF(err))
		}
		// The bin may hold only the paths that hash to it (TAP 15).
		if err := m.collect(want, vname, b.Signed.Targets, func(p string) bool { return sr.GetRolesForTarget(p)[0].Name == bin }); err != nil {
			return nil, err
		}
		m.bins = append(m.bins, repo.File{Name: vname, Data: data})
		delete(m.trusted.Targets, bin) // verified; the memory is not kept
	}
	return want, nil
}

// changed says whether a role's version differs from the mirror's
// previous snapshot.
func (m *mirrorSync) changed(file string) bool {
	if m.prevSnapshot == nil {
		return true
	}
	old, now := m.prevSnapshot.Signed.Meta[file], m.trusted.Snapshot.Signed.Meta[file]
	return old == nil || now == nil || old.Version != now.Version
}

// checkSnapshotRollback refuses a snapshot that drops a role the previous
// one listed or lowers its version (client workflow 5.5.5).
func checkSnapshotRollback(prev *metadata.Metadata[metadata.SnapshotType], data []byte) error {
	next, err := metadata.Snapshot().FromBytes(data)
	if err != nil {
		return err
	}
	for name, old := range prev.Signed.Meta {
		nm, ok := next.Signed.Meta[name]
		if !ok {
			return fmt.Errorf("it no longer lists %s (rollback)", name)
		}
		if nm.Version < old.Version {
			return fmt.Errorf("it lists %s v%d, older than the v%d the mirror has (rollback)", name, nm.Version, old.Version)
		}
	}
	return nil
}

// collect adds a role's targets that the mirror keeps.
func (m *mirrorSync) collect(want map[string]*metadata.TargetFiles, file string, targets map[string]*metadata.TargetFiles, belongs func(string) bool) error {
	for p, tf := range targets {
		if err := repo.ValidateTargetPath(p); err != nil {
			return verifyErr("metadata/"+file, err)
		}
		if belongs != nil && !belongs(p) {
			return verifyErr("metadata/"+file, fmt.Errorf("it holds %s, which belongs to another bin", p))
		}
		if !m.keeps(p) {
			m.res.TargetsSkipped++
			continue
		}
		out := *tf
		out.Path = p
		want[p] = &out
	}
	return nil
}

// keeps says whether the mirror copies a target's file: every one, or the
// configured components' and the repository-wide ones (policy/, trust/).
func (m *mirrorSync) keeps(p string) bool {
	if m.wantComponents == nil {
		return true
	}
	first, _, _ := strings.Cut(p, "/")
	if strings.HasPrefix(p, "policy/") || strings.HasPrefix(p, repo.CRLPrefix) {
		return true
	}
	return m.wantComponents[first]
}

// fetchTargets copies every wanted target's file that the mirror lacks,
// several at a time, each verified before it is stored.
func (m *mirrorSync) fetchTargets(ctx context.Context, want map[string]*metadata.TargetFiles) error {
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan string)
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	for range m.o.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if err := m.fetchTarget(ctx, want[p]); err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel(err)
					}
					errMu.Unlock()
				}
			}
		}()
	}
send:
	for _, p := range paths {
		select {
		case work <- p:
		case <-ctx.Done():
			break send
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return context.Cause(ctx)
}

// fetchTarget stores one target's file under its consistent-snapshot name:
// streamed from upstream into its own partial file in the work directory
// (partialName; resumed from what an earlier sync left there), checked
// against the signed length and every listed hash, then stored.
func (m *mirrorSync) fetchTarget(ctx context.Context, tf *metadata.TargetFiles) error {
	sum, ok := tf.Hashes["sha256"]
	if !ok || len(sum) != sha256.Size {
		return verifyErr("target "+tf.Path, errors.New("it has no sha256 hash"))
	}
	hexsum := hex.EncodeToString(sum)
	name := "targets/" + repo.ConsistentName(tf.Path, hexsum)
	if ok, err := m.present(ctx, name, tf.Length); err != nil {
		return fmt.Errorf("mirror: %w", err)
	} else if ok {
		m.mu.Lock()
		m.res.TargetsPresent++
		m.mu.Unlock()
		return nil
	}
	// A partial file of an earlier version, named by the sha256 alone.
	os.Remove(filepath.Join(m.o.WorkDir, hexsum+".partial"))
	partial := filepath.Join(m.o.WorkDir, partialName(name))
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	defer f.Close()
	hashes, err := newMirrorHasher(tf)
	if err != nil {
		return err
	}
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if off > tf.Length {
		off = 0
	}
	if off > 0 {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyN(hashes, f, off); err != nil {
			return fmt.Errorf("re-reading %s: %w", partial, err)
		}
	}
	body, start, err := m.from.Open(ctx, name, off)
	if err != nil {
		return fmt.Errorf("upstream: %s (%s): %w", name, tf.Path, err)
	}
	defer body.Close()
	if start != off {
		hashes.reset()
		off = 0
	}
	if err := f.Truncate(off); err != nil {
		return err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	n, err := io.CopyBuffer(io.MultiWriter(f, hashes), io.LimitReader(body, tf.Length-off+1), make([]byte, 256<<10))
	m.mu.Lock()
	m.res.TargetBytes += n
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("upstream: %s (%s), %d of %d bytes kept to resume: %w", name, tf.Path, off+n, tf.Length, err)
	}
	if off+n != tf.Length || hashes.verify() != nil {
		f.Close()
		os.Remove(partial)
		what := fmt.Sprintf("got %d bytes, the signed length is %d", off+n, tf.Length)
		if off+n == tf.Length {
			what = hashes.verify().Error()
		}
		return verifyErr(name, fmt.Errorf("not the signed target %s: %s", tf.Path, what))
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := m.to.PutIfAbsent(ctx, name, f, tf.Length); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("mirror: %w", err)
	}
	f.Close()
	os.Remove(partial)
	m.mu.Lock()
	m.res.TargetsCopied++
	m.mu.Unlock()
	return nil
}

// partialName is the work directory's file for a target being downloaded:
// named by the target's consistent name (hashed: a flat name), never by
// its sha256 alone, since two targets with the same bytes (one artifact
// released for two platforms) are downloaded at the same time and must
// not share a file.
func partialName(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:]) + ".target.partial"
}

// present says whether the mirror holds a target's file: one whose length
// is not the signed length (cut short by a crash, a full disk or by hand)
// is deleted and fetched again. Only the length is checked (a stat): the
// bytes were verified when they were stored.
func (m *mirrorSync) present(ctx context.Context, name string, length int64) (bool, error) {
	sz, ok := m.to.(objectSizer)
	if !ok {
		return m.to.Exists(ctx, name)
	}
	n, err := sz.Size(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if n == length {
		return true, nil
	}
	m.log.Warn("a target file on the mirror does not have its signed length; fetching it again", "name", name, "length", n, "signed", length)
	if err := m.to.Delete(ctx, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return false, nil
}

// objectSizer is a Store that tells an object's length cheaply (a stat):
// a missing object is an error wrapping fs.ErrNotExist.
type objectSizer interface {
	Size(ctx context.Context, name string) (int64, error)
}

var (
	_ objectSizer = (*DirStore)(nil)
	_ objectSizer = (*S3Store)(nil)
)

// mirrorHasher computes every hash a target lists.
type mirrorHasher struct {
	path string
	hs   map[string]hash.Hash
	want map[string][]byte
}

func newMirrorHasher(tf *metadata.TargetFiles) (*mirrorHasher, error) {
	h := &mirrorHasher{path: tf.Path, hs: map[string]hash.Hash{}, want: map[string][]byte{}}
	for alg, sum := range tf.Hashes {
		switch alg {
		case "sha256":
			h.hs[alg] = sha256.New()
		case "sha512":
			h.hs[alg] = sha512.New()
		default:
			return nil, verifyErr("target "+tf.Path, fmt.Errorf("it lists a %q hash, which cannot be checked", alg))
		}
		h.want[alg] = sum
	}
	return h, nil
}

func (h *mirrorHasher) Write(p []byte) (int, error) {
	for _, x := range h.hs {
		x.Write(p)
	}
	return len(p), nil
}

func (h *mirrorHasher) reset() {
	for _, x := range h.hs {
		x.Reset()
	}
}

func (h *mirrorHasher) verify() error {
	for alg, x := range h.hs {
		if got := x.Sum(nil); !bytes.Equal(got, h.want[alg]) {
			return fmt.Errorf("its %s is %x, the signed one %x", alg, got, h.want[alg])
		}
	}
	return nil
}

// publish writes the verified metadata in a publish's order: root
// versions, bins, targets, snapshot, and timestamp.json last (swapped only
// if it is still the one this sync started from). Versioned files are
// immutable: one the mirror already holds must be identical.
func (m *mirrorSync) publish(ctx context.Context) error {
	var files []repo.File
	files = append(files, m.roots...)
	files = append(files, m.bins...)
	files = append(files, m.top...)
	files = append(files, m.snap...)
	for _, f := range files {
		name := "metadata/" + f.Name
		err := m.to.PutIfAbsent(ctx, name, bytes.NewReader(f.Data), int64(len(f.Data)))
		if errors.Is(err, ErrExists) {
			have, _, rerr := m.to.Read(ctx, name, int64(len(f.Data))+1)
			if rerr != nil || !bytes.Equal(have, f.Data) {
				return fmt.Errorf("mirror: %s is already there with other content than upstream's verified copy: the mirror holds another repository, or was changed by hand; nothing was published", name)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("mirror: publish %s: %w", name, err)
		}
	}
	if err := m.to.Swap(ctx, "metadata/timestamp.json", m.timestampTag, m.timestamp); err != nil {
		if errors.Is(err, ErrChanged) {
			return fmt.Errorf("mirror: %w (another mirror sync or a publish changed timestamp.json; run again)", ErrChanged)
		}
		return fmt.Errorf("mirror: publish metadata/timestamp.json: %w", err)
	}
	return nil
}

func (m *mirrorSync) statePath() string { return filepath.Join(m.o.WorkDir, "mirror.json") }

func (m *mirrorSync) readState() *mirrorState {
	data, err := os.ReadFile(m.statePath())
	if err != nil {
		return nil
	}
	var st mirrorState
	if json.Unmarshal(data, &st) != nil {
		return nil
	}
	if st.Components == nil {
		st.Components = []string{}
	}
	return &st
}

func (m *mirrorSync) writeState(st mirrorState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(m.statePath(), append(data, '\n'), 0o600)
}
