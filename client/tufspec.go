package client

// The agent's TUF layer where it goes beyond go-tuf's Updater. go-tuf's
// Updater does the top-level refresh (client workflow 5.3 to 5.6: root,
// timestamp, snapshot, top-level targets) and go-tuf's trustedmetadata
// checks every piece of metadata; everything after that is here, because
// the Updater gets parts of the specification wrong for us:
//
//   - The search for a target through delegated roles (5.6.7) is ours
//     (findTarget). go-tuf's Updater.GetTargetInfo returns a delegated role
//     that is already loaded without checking it against the delegator of
//     the path being walked: a role delegated by two parents and signed
//     only with the first parent's keys was accepted through the second
//     (go-tuf issue #759; docs/go-tuf-delegator.patch fixes the Updater).
//     It also reads a cached delegated role from a file name other than
//     the one it writes (role names are URL-escaped only when written).
//   - Every hash a target lists is checked (5.7.3: "the target file's
//     hashes ... must match"), sha256 and sha512, while the bytes stream to
//     disk; a target that lists only sha512 is as usable as one with
//     sha256, and one that lists an algorithm the agent cannot compute is
//     refused (a hash nobody checked protects nothing).
//   - Target URLs follow the trusted root's consistent_snapshot
//     (<dir>/<hash>.<name> only when it is true) and escape the target
//     path, so any name the specification allows (spaces, '?', '#') is
//     fetched as itself. Names are validated where they become local file
//     paths (staging, CRLs, the conformance adapter), not before the
//     delegation walk.
//   - Artifacts are streamed to a file (session.download), never held in
//     memory as go-tuf's DownloadTarget does, and a 404 is not retried.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"net/http"
	neturl "net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
)

// maxDelegations bounds the roles one search visits (5.6.7.1; go-tuf's
// and python-tuf's default).
const maxDelegations = 32

// sessionConfig says where one TUF session finds its trusted root, its
// metadata cache and the repository.
type sessionConfig struct {
	root        []byte // the trusted root.json
	metadataDir string // root.json, timestamp.json, ..., <role>.json
	metadataURL string // <repository>/metadata, no trailing slash
	targetsURL  string // <repository>/targets, no trailing slash
	client      *http.Client
	// refTime is the time expiry is judged at; zero: now. Only the
	// conformance adapter sets it (the suite fakes the clock).
	refTime time.Time
	// name is the repository as refresh errors name it.
	name string
}

// session is one verified view of the repository: a fresh go-tuf Updater
// that did one Refresh (it is not safe for concurrent use), and the
// delegated roles this session has loaded and verified.
type session struct {
	up          *updater.Updater
	f           *httpFetcher
	metadataURL string
	metadataDir string
	targetsURL  string
	// consistent is the trusted root's consistent_snapshot: metadata and
	// target URLs carry versions and hashes only when it is true.
	consistent bool
	cacheDir   string // small targets by hash ("": no cache)

	// trusted holds the verified top-level metadata (shared with the
	// Updater) and, in its own Targets map, every targets role this
	// session has loaded.
	trusted trustedmetadata.TrustedMetadata
	// verifiedVia records each (role, delegator) pair a loaded role has
	// been verified against.
	verifiedVia map[[2]string]bool

	// mu guards trusted and verifiedVia: components are looked up from
	// several goroutines (pool.go). findTarget holds it for a walk and
	// lets go of it only while a role downloads; fetching dedupes those.
	mu       sync.Mutex
	fetching map[string]*roleFetch

	// pointers are the channel pointers this session verified, by
	// component (channelRelease; several goroutines).
	pointers sync.Map // string → PointerSeen

	// mirrors are the repository's mirrors, base the one this session's
	// metadata came from (mirror.go); nil and "" without mirrors.
	mirrors *mirrorSet
	base    string
}

// roleFetch is a delegated role's download in progress: the goroutines
// that need the same role wait for the first one's.
type roleFetch struct {
	done chan struct{}
	data []byte
	err  error
}

// fetchRole downloads a delegated role's metadata, once for all the
// walks that need it at the same time. Called with s.mu held; it lets go
// of it while the download runs.
func (s *session) fetchRole(remote string, length int64) ([]byte, error) {
	if s.fetching == nil {
		s.fetching = map[string]*roleFetch{}
	}
	rf, ok := s.fetching[remote]
	if !ok {
		rf = &roleFetch{done: make(chan struct{})}
		s.fetching[remote] = rf
		s.mu.Unlock()
		rf.data, rf.err = s.f.DownloadFile(remote, length, 0)
		close(rf.done)
		s.mu.Lock()
		delete(s.fetching, remote)
		return rf.data, rf.err
	}
	s.mu.Unlock()
	<-rf.done
	s.mu.Lock()
	return rf.data, rf.err
}

// openSession refreshes the top-level metadata (go-tuf's Updater, client
// workflow 5.3 to 5.6) and persists it durably.
func openSession(ctx context.Context, c sessionConfig) (*session, error) {
	cfg, err := config.New(c.metadataURL, c.root)
	if err != nil {
		return nil, err
	}
	f := &httpFetcher{ctx: ctx, client: c.client}
	named := &namingFetcher{Fetcher: f}
	cfg.Fetcher = named
	cfg.RemoteTargetsURL = c.targetsURL
	cfg.LocalMetadataDir = c.metadataDir
	// go-tuf's own target download is never used (session.download is).
	cfg.LocalTargetsDir = c.metadataDir
	cfg.PrefixTargetsWithHash = true
	cfg.RootMaxLength = maxRootSize
	cfg.TimestampMaxLength = maxTimestampSize
	cfg.SnapshotMaxLength = maxSnapshotSize
	cfg.TargetsMaxLength = maxTargetsSize
	cfg.MaxDelegations = maxDelegations
	up, err := updater.New(cfg)
	if err != nil {
		return nil, classifyTUF(err)
	}
	if !c.refTime.IsZero() {
		up.UnsafeSetRefTime(c.refTime.UTC())
	}
	if err := up.Refresh(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("refresh %s: %w", c.name, named.blame(classifyTUF(err)))
	}
	// go-tuf writes its cache without fsync; the cached versions are the
	// rollback protection, so make them durable.
	if err := syncCache(cfg.LocalMetadataDir); err != nil {
		return nil, err
	}
	tm := up.GetTrustedMetadataSet()
	// A map of our own: the roles the walk loads are not the Updater's.
	tm.Targets = maps.Clone(tm.Targets)
	return &session{
		up:          up,
		f:           f,
		metadataURL: c.metadataURL,
		metadataDir: c.metadataDir,
		targetsURL:  c.targetsURL,
		consistent:  tm.Root.Signed.ConsistentSnapshot,
		trusted:     tm,
		verifiedVia: map[[2]string]bool{{metadata.TARGETS, metadata.ROOT}: true},
	}, nil
}

// findTarget searches the delegation graph for p (client workflow 5.6.7):
// preorder depth-first from the top-level targets, in the order each
// delegator lists its roles, only into roles whose paths match p,
// stopping below a terminating delegation, visiting each role at most once
// and at most maxDelegations roles. A target that is not there is
// errTargetNotFound; any other error means the walk failed (metadata
// that does not verify, a download that failed) and no answer was found.
func (s *session) findTarget(p string) (*metadata.TargetFiles, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type visit struct{ role, delegator string }
	stack := []visit{{metadata.TARGETS, metadata.ROOT}}
	visited := map[string]bool{}
	for len(stack) > 0 && len(visited) <= maxDelegations {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited[v.role] {
			continue // a cycle, or a role reached twice in this walk
		}
		role, err := s.loadRole(v.role, v.delegator)
		if err != nil {
			return nil, err
		}
		if tf, ok := role.Signed.Targets[p]; ok {
			out := *tf // the caller may set fields; the trusted copy stays as signed
			out.Path = p
			return &out, nil
		}
		visited[v.role] = true
		if role.Signed.Delegations == nil {
			continue
		}
		var children []visit
		for _, r := range role.Signed.Delegations.GetRolesForTarget(p) {
			children = append(children, visit{r.Name, v.role})
			if r.Terminating {
				stack = nil // no backtracking past a terminating delegation
				break
			}
		}
		slices.Reverse(children)
		stack = append(stack, children...)
	}
	return nil, fmt.Errorf("%s: %w", p, errTargetNotFound)
}

// loadRole returns the targets role name as delegated by delegator,
// verified (client workflow 5.6): from this session if it was loaded
// already, else from the local cache if that copy still verifies, else
// downloaded. A role already loaded through another delegator is checked
// again against this one's keys and threshold: a role may be delegated by
// two parents with different keys, and being trusted through one gives it
// no authority through the other (go-tuf issue #759).
func (s *session) loadRole(name, delegator string) (*metadata.Metadata[metadata.TargetsType], error) {
	file := roleFileName(name)
	if delegator != metadata.ROOT && (name == "" || slices.Contains(metadata.TOP_LEVEL_ROLE_NAMES[:], name)) {
		return nil, verifyf("%s delegates to %q, which is not a valid delegated role name; this may be an attack", delegator, name)
	}
	if role, ok := s.loaded(name, delegator); ok {
		return role()
	}
	local := filepath.Join(s.metadataDir, file)
	if data, err := readFileLimited(local, maxTargetsSize); err == nil {
		if role, err := s.trusted.UpdateDelegatedTargets(data, name, delegator); err == nil {
			s.verifiedVia[[2]string{name, delegator}] = true
			return role, nil
		}
		// A stale or damaged cached copy: the repository's is fetched.
	}
	meta, ok := s.trusted.Snapshot.Signed.Meta[name+".json"]
	if !ok {
		return nil, verifyf("metadata/snapshot.json does not list %s.json, which %s delegates to", name, delegator)
	}
	length := meta.Length
	if length <= 0 || length > maxTargetsSize {
		length = maxTargetsSize
	}
	remote := s.metadataURL + "/" + neturl.PathEscape(name) + ".json"
	if s.consistent {
		remote = s.metadataURL + "/" + strconv.FormatInt(meta.Version, 10) + "." + neturl.PathEscape(name) + ".json"
	}
	// From the mirror in use, or the next (mirror.go).
	role, data, err := s.fetchRoleFrom(name, delegator, remote, length)
	if err != nil || data == nil {
		return role, err // data nil: another walk loaded it meanwhile
	}
	s.verifiedVia[[2]string{name, delegator}] = true
	if err := atomicfile.WriteFile(local, data, 0o600); err != nil {
		return nil, err
	}
	return role, nil
}

// loaded is a role this session has loaded already, checked against
// delegator's keys and threshold if it was loaded through another.
func (s *session) loaded(name, delegator string) (func() (*metadata.Metadata[metadata.TargetsType], error), bool) {
	role, ok := s.trusted.Targets[name]
	if !ok {
		return nil, false
	}
	return func() (*metadata.Metadata[metadata.TargetsType], error) {
		if s.verifiedVia[[2]string{name, delegator}] {
			return role, nil
		}
		if err := s.verifyDelegate(delegator, name, role); err != nil {
			return nil, verifyf("metadata/%s is not signed with the keys %s delegates %s to (a role delegated by two parents is trusted through each only with that parent's keys); this may be an attack: %v", roleFileName(name), delegator, name, err)
		}
		s.verifiedVia[[2]string{name, delegator}] = true
		return role, nil
	}, true
}

// verifyDelegate checks role's signatures against what delegator says
// about name: its keys and threshold.
func (s *session) verifyDelegate(delegator, name string, role *metadata.Metadata[metadata.TargetsType]) error {
	if delegator == metadata.ROOT {
		return s.trusted.Root.VerifyDelegate(name, role)
	}
	parent, ok := s.trusted.Targets[delegator]
	if !ok {
		return fmt.Errorf("delegator %s is not loaded", delegator)
	}
	return parent.VerifyDelegate(name, role)
}

// roleFileName is a role's metadata file, in the cache and in URLs: the
// name URL-escaped (no '/' survives), as go-tuf and python-tuf write it.
func roleFileName(role string) string { return neturl.PathEscape(role) + ".json" }

// targetURL is where a target's bytes live: <targets>/<path>, or with
// consistent snapshots <targets>/<dir>/<hash>.<name> (client workflow
// 5.7.3), each path segment URL-escaped.
func (s *session) targetURL(tf *metadata.TargetFiles) (string, error) {
	p := tf.Path
	if s.consistent {
		key, err := targetKey(tf)
		if err != nil {
			return "", err
		}
		dir, file := path.Split(p)
		p = dir + key + "." + file
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		segs[i] = neturl.PathEscape(seg)
	}
	return s.targetsURL + "/" + strings.Join(segs, "/"), nil
}

// hashAlgorithms are the hash algorithms the agent checks, in order of
// preference for naming a target (URLs and the small-target cache).
var hashAlgorithms = []hashAlgorithm{
	{"sha256", sha256.New},
	{"sha512", sha512.New},
}

type hashAlgorithm struct {
	name string
	new  func() hash.Hash
}

// targetKey is the hex of the target's preferred hash (sha256, else
// sha512): the <hash> of its consistent-snapshot name and its key in the
// small-target cache. A target without a hash the agent can check has no
// key.
func targetKey(tf *metadata.TargetFiles) (string, error) {
	if _, err := newTargetHasher(tf); err != nil {
		return "", err
	}
	for _, alg := range hashAlgorithms {
		if sum, ok := tf.Hashes[alg.name]; ok {
			return fmt.Sprintf("%x", []byte(sum)), nil
		}
	}
	return "", verifyf("target %s lists no hash the agent can check", tf.Path)
}

// targetHasher computes, in one pass, every hash a target lists, and
// sha256 whether listed or not (the code signature's digest and the
// release's identity).
type targetHasher struct {
	path   string
	hashes []listedHash
}

type listedHash struct {
	name string
	h    hash.Hash
	want []byte // nil: not listed, computed only for Sum256
}

// newTargetHasher refuses a target that lists no hash, or any hash of an
// algorithm the agent cannot compute or of the wrong size: every hash a
// target lists must match (client workflow 5.7.3), so one that cannot be
// checked fails the target.
func newTargetHasher(tf *metadata.TargetFiles) (*targetHasher, error) {
	if len(tf.Hashes) == 0 {
		return nil, verifyf("target %s lists no hashes", tf.Path)
	}
	for name := range tf.Hashes {
		if !slices.ContainsFunc(hashAlgorithms, func(a hashAlgorithm) bool { return a.name == name }) {
			return nil, verifyf("target %s lists a %q hash, which the agent cannot check (every listed hash must match; supported: sha256, sha512)", tf.Path, name)
		}
	}
	t := &targetHasher{path: tf.Path}
	for _, alg := range hashAlgorithms {
		want, listed := tf.Hashes[alg.name]
		if !listed && alg.name != "sha256" {
			continue
		}
		h := alg.new()
		if listed && len(want) != h.Size() {
			return nil, verifyf("target %s: its %s hash has %d bytes, not %d", tf.Path, alg.name, len(want), h.Size())
		}
		lh := listedHash{name: alg.name, h: h}
		if listed {
			lh.want = want
		}
		t.hashes = append(t.hashes, lh)
	}
	return t, nil
}

// Write hashes p with every algorithm; it never fails.
func (t *targetHasher) Write(p []byte) (int, error) {
	for _, lh := range t.hashes {
		lh.h.Write(p)
	}
	return len(p), nil
}

// Reset starts every hash again.
func (t *targetHasher) Reset() {
	for _, lh := range t.hashes {
		lh.h.Reset()
	}
}

// Sum256 is the sha256 of what was written.
func (t *targetHasher) Sum256() []byte {
	for _, lh := range t.hashes {
		if lh.name == "sha256" {
			return lh.h.Sum(nil)
		}
	}
	panic("targetHasher without sha256")
}

// verify checks every listed hash of what was written.
func (t *targetHasher) verify() error {
	for _, lh := range t.hashes {
		if lh.want == nil {
			continue
		}
		if got := lh.h.Sum(nil); !bytes.Equal(got, lh.want) {
			return verifyf("%s: %s %x does not match the signed %x (this may be an attack)", t.path, lh.name, got, []byte(lh.want))
		}
	}
	return nil
}

// verifyTargetBytes checks data against the target's signed length and
// every hash it lists.
func verifyTargetBytes(tf *metadata.TargetFiles, data []byte) error {
	h, err := newTargetHasher(tf)
	if err != nil {
		return err
	}
	if int64(len(data)) != tf.Length {
		return verifyf("%s: got %d bytes, signed length is %d (this may be an attack)", tf.Path, len(data), tf.Length)
	}
	h.Write(data)
	return h.verify()
}

// verifyTargetFile reports whether the file at name is the target: a
// regular file of the signed length whose every listed hash matches. It
// streams the file.
func verifyTargetFile(tf *metadata.TargetFiles, name string) error {
	h, err := newTargetHasher(tf)
	if err != nil {
		return err
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() != tf.Length {
		return verifyf("%s: %s is not a regular file of the signed length %d", tf.Path, name, tf.Length)
	}
	n, err := io.CopyBuffer(h, io.LimitReader(f, tf.Length+1), make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if n != tf.Length {
		return verifyf("%s: %s changed while it was read", tf.Path, name)
	}
	return h.verify()
}

// errTargetNotFound: verified metadata has no such target.
var errTargetNotFound = errors.New("target not found in signed metadata")
