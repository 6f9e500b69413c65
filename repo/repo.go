package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Role names.
const (
	RoleRoot      = metadata.ROOT
	RoleTargets   = metadata.TARGETS
	RoleSnapshot  = metadata.SNAPSHOT
	RoleTimestamp = metadata.TIMESTAMP
)

// TopLevelRoles in the order keys are usually listed.
var TopLevelRoles = []string{RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp}

// Default lifetimes of each role's metadata (DESIGN.md). RootExpiry is
// also what bcpublish gives a staged root (publisher.StageRoot).
const (
	RootExpiry      = 365 * 24 * time.Hour
	targetsExpiry   = 90 * 24 * time.Hour
	snapshotExpiry  = 7 * 24 * time.Hour
	timestampExpiry = 24 * time.Hour
)

// Size limits on metadata read by Load (the agent has its own, in go-tuf).
const (
	MaxRootSize      = 512 << 10
	MaxTimestampSize = 16 << 10
	MaxSnapshotSize  = 2 << 20
	MaxTargetsSize   = 16 << 20
	maxRootVersions  = 1024
)

// Errors by category.
var (
	// ErrConflict: a target path already exists with other content.
	ErrConflict = errors.New("target already published with other content")
	// ErrWrongKey: a key given to sign a role is not that role's key in
	// the repository's root (an operator mistake, not an attack).
	ErrWrongKey = errors.New("wrong signing key")
	// ErrNotFound: no repository (no timestamp.json) at the location.
	ErrNotFound = errors.New("no repository found")
)

// WrongKeyError is ErrWrongKey for one role: Have of the keys given for
// Role are among the repository root's keys for it, and it needs Need
// signatures. OtherRole, if set, is the role of the root a key given is
// a key of instead (a key of another role given for this one). Err is
// what go-tuf said, if it was asked.
type WrongKeyError struct {
	Role       string
	Have, Need int
	OtherRole  string
	Bins       bool // the keys of the hashed bins, which targets delegates to
	Err        error
}

func (e *WrongKeyError) Error() string {
	whose := "the repository root's " + e.Role + " keys"
	if e.Bins {
		whose = "the targets keys the hashed bins are delegated to"
	}
	switch {
	case e.OtherRole != "":
		return fmt.Sprintf("the %s key given is the repository's %s key, not one of %s (%d of the %d signatures needed)", e.Role, e.OtherRole, whose, e.Have, e.Need)
	case e.Have > 0:
		return fmt.Sprintf("too few of the %s keys given are %s (%d of the %d signatures needed)", e.Role, whose, e.Have, e.Need)
	}
	return fmt.Sprintf("the %s key given is not one of %s (%d of the %d signatures needed)", e.Role, whose, e.Have, e.Need)
}

// Unwrap makes a WrongKeyError match ErrWrongKey and reach go-tuf's error.
func (e *WrongKeyError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrWrongKey}
	}
	return []error{ErrWrongKey, e.Err}
}

// wrongKey is the WrongKeyError of the keys given for role against the
// key ids wanted and the threshold.
func (r *Repo) wrongKey(role string, given []signature.Signer, wanted []string, need int, cause error) *WrongKeyError {
	e := &WrongKeyError{Role: role, Need: need, Err: cause}
	for _, s := range given {
		_, id, err := tufKey(s)
		if err != nil {
			continue
		}
		if slices.Contains(wanted, id) {
			e.Have++
			continue
		}
		for _, other := range TopLevelRoles {
			if rr := r.Root.Signed.Roles[other]; other != role && rr != nil && slices.Contains(rr.KeyIDs, id) && e.OtherRole == "" {
				e.OtherRole = other
			}
		}
	}
	return e
}

// CheckKeys is a *WrongKeyError unless enough of given (the root's
// threshold) are the repository root's keys for role.
func (r *Repo) CheckKeys(role string, given []signature.Signer) error {
	rr := r.Root.Signed.Roles[role]
	if rr == nil {
		return fmt.Errorf("role %q: want root, targets, snapshot or timestamp", role)
	}
	if e := r.wrongKey(role, given, rr.KeyIDs, rr.Threshold, nil); e.Have < e.Need {
		return e
	}
	return nil
}

// KeyRoles lists the roles of root that list s's key, and its key id.
func KeyRoles(root *metadata.Metadata[metadata.RootType], s signature.Signer) ([]string, string, error) {
	_, id, err := tufKey(s)
	if err != nil {
		return nil, "", err
	}
	var roles []string
	for _, role := range TopLevelRoles {
		if rr := root.Signed.Roles[role]; rr != nil && slices.Contains(rr.KeyIDs, id) {
			roles = append(roles, role)
		}
	}
	return roles, id, nil
}

// Keys are the signers of each top-level role. A role may have several
// keys; each one signs.
type Keys map[string][]signature.Signer

// File is a metadata file to write, in order.
type File struct {
	Name string // e.g. "3.targets.json", "timestamp.json"
	Data []byte
}

// Repo is a loaded, verified repository state.
type Repo struct {
	Root      *metadata.Metadata[metadata.RootType]
	Targets   *metadata.Metadata[metadata.TargetsType]
	Snapshot  *metadata.Metadata[metadata.SnapshotType]
	Timestamp *metadata.Metadata[metadata.TimestampType]
	// TimestampTag is the store's opaque version tag (an ETag) of the
	// timestamp.json this state was loaded from: publishing replaces
	// timestamp.json only if it still has this tag (compare-and-swap).
	TimestampTag string

	// Taken, when set, says whether a versioned metadata file (such as
	// "7.snapshot.json") already exists in the store. Commit then gives each
	// role the next free version, past files an interrupted publish left
	// unreferenced (versioned files are immutable). It costs one lookup a
	// written file, however long the repository's history.
	Taken func(file string) (bool, error)

	// Hashed bins (TAP 15), when targets delegates to them: loaded on
	// demand, and only the changed ones are re-signed.
	read     ReadFunc
	bins     map[string]*metadata.Metadata[metadata.TargetsType]
	dirty    map[string]bool
	topDirty bool
	// staleTargets: loaded by LoadStaleTargets from a targets.json signed
	// by an earlier root's targets keys; the next Commit re-keys the bins
	// and re-signs everything.
	staleTargets bool
}

// maxSkipped bounds how many unreferenced versions of one role Commit
// steps over before it gives up.
const maxSkipped = 10000

// nextVersion is the first version after v whose file is not taken.
func (r *Repo) nextVersion(v int64, role string) (int64, error) {
	v++
	if r.Taken == nil {
		return v, nil
	}
	for i := 0; i < maxSkipped; i++ {
		taken, err := r.Taken(fmt.Sprintf("%d.%s.json", v, role))
		if err != nil {
			return 0, fmt.Errorf("look for %d.%s.json: %w", v, role, err)
		}
		if !taken {
			return v, nil
		}
		v++
	}
	return 0, fmt.Errorf("more than %d unreferenced versions of %s.json in the repository", maxSkipped, role)
}

// expiry returns the expiry a role would get if signed at now.
func expiry(role string, now time.Time) time.Time {
	var d time.Duration
	switch role {
	case RoleRoot:
		d = RootExpiry
	case RoleTargets:
		d = targetsExpiry
	case RoleSnapshot:
		d = snapshotExpiry
	case RoleTimestamp:
		d = timestampExpiry
	}
	return now.UTC().Add(d).Truncate(time.Second)
}

// New makes version 1 of root, with consistent snapshots, the keys' public
// halves and threshold 1 for each role, signed by the root keys. Targets,
// snapshot and timestamp start empty at version 0: add targets, then Commit
// makes version 1 of each. Write 1.root.json (returned) before those files.
func New(keys Keys, now time.Time) (*Repo, File, error) { return NewBins(keys, now, 0) }

// maxBins bounds hashed bins (the snapshot lists each one).
const maxBins = 1 << 14

// NewBins is New with targets delegated to bins hashed bins (a power of
// two, 0 for a flat repository), signed with the targets keys. Artifacts,
// signatures and channel pointers go to the bins; policy/ and trust/ stay
// in targets.
func NewBins(keys Keys, now time.Time, bins int) (*Repo, File, error) {
	if bins != 0 && (bins < 2 || bins > maxBins || bins&(bins-1) != 0) {
		return nil, File{}, fmt.Errorf("bins %d: want a power of two from 2 to %d", bins, maxBins)
	}
	root := metadata.Root(expiry(RoleRoot, now))
	root.Signed.ConsistentSnapshot = true
	for _, role := range TopLevelRoles {
		if len(keys[role]) == 0 {
			return nil, File{}, fmt.Errorf("no %s key", role)
		}
		for _, s := range keys[role] {
			k, _, err := tufKey(s)
			if err != nil {
				return nil, File{}, fmt.Errorf("%s key: %w", role, err)
			}
			if err := root.Signed.AddKey(k, role); err != nil {
				return nil, File{}, fmt.Errorf("%s key: %w", role, err)
			}
		}
	}
	if err := signRole(root, keys[RoleRoot]); err != nil {
		return nil, File{}, err
	}
	rootBytes, err := root.ToBytes(true)
	if err != nil {
		return nil, File{}, err
	}
	r := &Repo{
		Root:      root,
		Targets:   metadata.Targets(),
		Snapshot:  metadata.Snapshot(),
		Timestamp: metadata.Timestamp(),
	}
	r.Targets.Signed.Version = 0
	r.Snapshot.Signed.Version = 0
	r.Timestamp.Signed.Version = 0
	r.topDirty = true
	if bins > 0 {
		d := &metadata.Delegations{Keys: map[string]*metadata.Key{}, SuccinctRoles: &metadata.SuccinctRoles{
			Threshold: 1, BitLength: bits.TrailingZeros(uint(bins)), NamePrefix: binsPrefix}}
		for _, s := range keys[RoleTargets] {
			k, id, err := tufKey(s)
			if err != nil {
				return nil, File{}, err
			}
			d.Keys[id] = k
			d.SuccinctRoles.KeyIDs = append(d.SuccinctRoles.KeyIDs, id)
		}
		r.Targets.Signed.Delegations = d
		r.bins, r.dirty = map[string]*metadata.Metadata[metadata.TargetsType]{}, map[string]bool{}
		for _, name := range d.SuccinctRoles.GetRoles() {
			b := metadata.Targets()
			b.Signed.Version = 0
			r.bins[name], r.dirty[name] = b, true
		}
	}
	return r, File{Name: "1.root.json", Data: rootBytes}, nil
}

// binsPrefix names the hashed bins: bins-00, bins-01, ….
const binsPrefix = "bins"

// Bins is the number of hashed bins (0: a flat repository).
func (r *Repo) Bins() int {
	if sr := r.succinct(); sr != nil {
		return 1 << sr.BitLength
	}
	return 0
}

func (r *Repo) succinct() *metadata.SuccinctRoles {
	if d := r.Targets.Signed.Delegations; d != nil {
		return d.SuccinctRoles
	}
	return nil
}

// binned says whether a target path lives in a bin (when there are bins):
// everything but the device policy and the revocation lists.
func binned(p string) bool {
	return !strings.HasPrefix(p, "policy/") && !strings.HasPrefix(p, CRLPrefix)
}

// BinFor returns the bin a target path belongs to ("" in a flat repository
// or for a path kept in targets).
func (r *Repo) BinFor(p string) string {
	sr := r.succinct()
	if sr == nil || !binned(p) {
		return ""
	}
	return sr.GetRolesForTarget(p)[0].Name
}

// bin loads a bin's metadata, verified against the targets delegation and
// the snapshot's version.
func (r *Repo) bin(name string) (*metadata.Metadata[metadata.TargetsType], error) {
	if b, ok := r.bins[name]; ok {
		return b, nil
	}
	meta := r.Snapshot.Signed.Meta[name+".json"]
	if meta == nil || r.read == nil {
		return nil, fmt.Errorf("%w: the snapshot does not list %s.json", ErrVerification, name)
	}
	file := fmt.Sprintf("%d.%s.json", meta.Version, name)
	data, err := readLimited(r.read, file, MaxTargetsSize)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	if err := meta.VerifyLengthHashes(data); err != nil {
		return nil, fmt.Errorf("%w: %s does not match the snapshot: %v", ErrVerification, file, err)
	}
	b, err := parseTargets(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrVerification, file, err)
	}
	if err := verifyBin(r.Targets, name, b); err != nil {
		var ue *metadata.ErrUnsignedMetadata
		if errors.As(err, &ue) {
			return nil, &explained{msg: fmt.Sprintf("%v: %s is not signed by enough of the targets keys the hashed bins are delegated to (it was changed, or signed with other keys)", ErrVerification, file),
				errs: []error{ErrVerification, err}}
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrVerification, file, err)
	}
	if b.Signed.Version != meta.Version {
		return nil, fmt.Errorf("%w: %s has version %d", ErrVerification, file, b.Signed.Version)
	}
	for p := range b.Signed.Targets {
		if err := ValidateTargetPath(p); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrVerification, file, err)
		}
		if r.BinFor(p) != name {
			return nil, fmt.Errorf("%w: %s holds %s, which belongs to %s", ErrVerification, file, p, r.BinFor(p))
		}
	}
	if r.bins == nil {
		r.bins, r.dirty = map[string]*metadata.Metadata[metadata.TargetsType]{}, map[string]bool{}
	}
	r.bins[name] = b
	return b, nil
}

// targetsOf returns the target map that holds (or will hold) path.
func (r *Repo) targetsOf(path string) (map[string]*metadata.TargetFiles, string, error) {
	name := r.BinFor(path)
	if name == "" {
		return r.Targets.Signed.Targets, "", nil
	}
	b, err := r.bin(name)
	if err != nil {
		return nil, "", err
	}
	return b.Signed.Targets, name, nil
}

func (r *Repo) markDirty(bin string) {
	if bin == "" {
		r.topDirty = true
	} else {
		r.dirty[bin] = true
	}
}

// tufKey is a signer's TUF public key and its key ID.
func tufKey(s signature.Signer) (*metadata.Key, string, error) {
	pub, err := s.PublicKey()
	if err != nil {
		return nil, "", err
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, "", err
	}
	id, err := k.ID()
	if err != nil {
		return nil, "", err
	}
	return k, id, nil
}

// checkBinKeys makes sure the keys given can sign the bins (enough of
// them are the delegation's keys), once, instead of verifying every bin
// after signing it.
func (r *Repo) checkBinKeys(keys Keys) error {
	sr := r.succinct()
	have := 0
	for _, s := range keys[RoleTargets] {
		_, id, err := tufKey(s)
		if err != nil {
			return err
		}
		if slices.Contains(sr.KeyIDs, id) {
			have++
		}
	}
	if have < sr.Threshold {
		e := r.wrongKey(RoleTargets, keys[RoleTargets], sr.KeyIDs, sr.Threshold, nil)
		e.Bins = true
		return e
	}
	return nil
}

// AllTargets returns every target, loading every bin.
func (r *Repo) AllTargets() (map[string]*metadata.TargetFiles, error) {
	out := map[string]*metadata.TargetFiles{}
	for p, tf := range r.Targets.Signed.Targets {
		out[p] = tf
	}
	if sr := r.succinct(); sr != nil {
		for _, name := range sr.GetRoles() {
			b, err := r.bin(name)
			if err != nil {
				return nil, err
			}
			for p, tf := range b.Signed.Targets {
				out[p] = tf
			}
		}
	}
	return out, nil
}

// SetCustom replaces a target's custom metadata (to yank a release).
func (r *Repo) SetCustom(path string, custom *json.RawMessage) error {
	m, bin, err := r.targetsOf(path)
	if err != nil {
		return err
	}
	tf, ok := m[path]
	if !ok {
		return fmt.Errorf("no target %s", path)
	}
	tf.Custom = custom
	r.markDirty(bin)
	return nil
}

// Remove deletes a mutable target (a channel pointer).
func (r *Repo) Remove(path string) error {
	m, bin, err := r.targetsOf(path)
	if err != nil {
		return err
	}
	delete(m, path)
	r.markDirty(bin)
	return nil
}

// MarkAllDirty makes the next Commit re-sign targets and every bin (their
// expiry runs out on a quiet repository).
func (r *Repo) MarkAllDirty() error {
	r.topDirty = true
	if sr := r.succinct(); sr != nil {
		for _, name := range sr.GetRoles() {
			if _, err := r.bin(name); err != nil {
				return err
			}
			r.dirty[name] = true
		}
	}
	return nil
}

func signRole[T metadata.Roles](md *metadata.Metadata[T], signers []signature.Signer) error {
	md.ClearSignatures()
	for _, s := range signers {
		if _, err := md.Sign(s); err != nil {
			return err
		}
	}
	return nil
}

// ReadFunc reads a metadata file by name ("timestamp.json", "3.root.json").
// A missing file must be reported with an error that wraps fs.ErrNotExist.
type ReadFunc func(name string) ([]byte, error)

func readLimited(read ReadFunc, name string, limit int) ([]byte, error) {
	data, err := read(name)
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrVerification, name, limit)
	}
	return data, nil
}

// Load reads and verifies a repository: the chain of roots from 1.root.json
// (each signed by the previous root's threshold and its own), then
// timestamp, snapshot and targets with their signatures, versions, lengths
// and hashes. Expiry is not checked here (a publisher must be able to
// refresh expired metadata); Status reports it.
func Load(read ReadFunc) (*Repo, error) { return load(read, false) }

// LoadStaleTargets is Load for `bcpublish refresh --targets` repairing a
// repository that an older bcpublish left half-rotated: a root that changed
// the targets keys was published, but targets.json (and, with hashed bins,
// the bins and their delegation) were not re-signed, so every client
// refuses the repository. Such a targets.json is accepted if it verifies
// against the targets keys of an earlier root of the verified chain, and
// is pinned by hash in a snapshot signed with the current snapshot keys;
// the next Commit re-signs it and every bin with the current targets keys.
// Anything else is refused as Load refuses it.
func LoadStaleTargets(read ReadFunc) (*Repo, error) { return load(read, true) }

func load(read ReadFunc, staleOK bool) (*Repo, error) {
	tsData, err := readLimited(read, "timestamp.json", MaxTimestampSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: metadata/timestamp.json is missing (run bcpublish init)", ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	r := &Repo{}
	var roots []*metadata.Metadata[metadata.RootType]
	for v := int64(1); v <= maxRootVersions; v++ {
		name := fmt.Sprintf("%d.root.json", v)
		data, err := readLimited(read, name, MaxRootSize)
		if errors.Is(err, fs.ErrNotExist) && v > 1 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		next, err := metadata.Root().FromBytes(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrVerification, name, err)
		}
		if next.Signed.Version != v {
			return nil, fmt.Errorf("%w: %s has version %d", ErrVerification, name, next.Signed.Version)
		}
		if r.Root != nil {
			if err := r.Root.VerifyDelegate(RoleRoot, next); err != nil {
				return nil, unsigned(r.Root, RoleRoot, name, next, err)
			}
		}
		if err := next.VerifyDelegate(RoleRoot, next); err != nil {
			return nil, unsigned(next, RoleRoot, name, next, err)
		}
		r.Root = next
		roots = append(roots, next)
	}
	if !r.Root.Signed.ConsistentSnapshot {
		return nil, fmt.Errorf("%w: root does not use consistent snapshots", ErrVerification)
	}
	if r.Timestamp, err = metadata.Timestamp().FromBytes(tsData); err != nil {
		return nil, fmt.Errorf("%w: timestamp.json: %v", ErrVerification, err)
	}
	if err := r.Root.VerifyDelegate(RoleTimestamp, r.Timestamp); err != nil {
		return nil, unsigned(r.Root, RoleTimestamp, "timestamp.json", r.Timestamp, err)
	}
	snapMeta := r.Timestamp.Signed.Meta["snapshot.json"]
	if snapMeta == nil {
		return nil, fmt.Errorf("%w: timestamp.json does not name snapshot.json", ErrVerification)
	}
	name := fmt.Sprintf("%d.snapshot.json", snapMeta.Version)
	data, err := readLimited(read, name, MaxSnapshotSize)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if err := snapMeta.VerifyLengthHashes(data); err != nil {
		return nil, fmt.Errorf("%w: %s does not match timestamp.json: %v", ErrVerification, name, err)
	}
	if r.Snapshot, err = metadata.Snapshot().FromBytes(data); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrVerification, name, err)
	}
	if err := r.Root.VerifyDelegate(RoleSnapshot, r.Snapshot); err != nil {
		return nil, unsigned(r.Root, RoleSnapshot, name, r.Snapshot, err)
	}
	if r.Snapshot.Signed.Version != snapMeta.Version {
		return nil, fmt.Errorf("%w: %s has version %d", ErrVerification, name, r.Snapshot.Signed.Version)
	}
	tMeta := r.Snapshot.Signed.Meta["targets.json"]
	if tMeta == nil {
		return nil, fmt.Errorf("%w: %s does not name targets.json", ErrVerification, name)
	}
	name = fmt.Sprintf("%d.targets.json", tMeta.Version)
	data, err = readLimited(read, name, MaxTargetsSize)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if err := tMeta.VerifyLengthHashes(data); err != nil {
		return nil, fmt.Errorf("%w: %s does not match the snapshot: %v", ErrVerification, name, err)
	}
	if r.Targets, err = parseTargets(data); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrVerification, name, err)
	}
	if err := r.Root.VerifyDelegate(RoleTargets, r.Targets); err != nil {
		old := signedByEarlierRoot(roots, r.Targets)
		switch {
		case old > 0 && staleOK && len(tMeta.Hashes) > 0:
			r.staleTargets = true
		case old > 0:
			return nil, fmt.Errorf("%w: %s is signed by the targets keys of root v%d, not by those of root v%d: a targets key rotation was published without re-signing targets (older bcpublish releases did that on repositories with hashed bins); repair it with bcpublish refresh --targets and the new targets key: %v",
				ErrVerification, name, old, r.Root.Signed.Version, err)
		default:
			return nil, unsigned(r.Root, RoleTargets, name, r.Targets, err)
		}
	}
	if r.Targets.Signed.Version != tMeta.Version {
		return nil, fmt.Errorf("%w: %s has version %d", ErrVerification, name, r.Targets.Signed.Version)
	}
	for p := range r.Targets.Signed.Targets {
		if err := ValidateTargetPath(p); err != nil {
			return nil, fmt.Errorf("%w: targets metadata: %v", ErrVerification, err)
		}
	}
	r.read = read
	return r, nil
}

// signedByEarlierRoot returns the newest root version, before the last,
// whose targets keys verify md (0: none).
func signedByEarlierRoot(roots []*metadata.Metadata[metadata.RootType], md *metadata.Metadata[metadata.TargetsType]) int64 {
	for i := len(roots) - 2; i >= 0; i-- {
		if roots[i].VerifyDelegate(RoleTargets, md) == nil {
			return roots[i].Signed.Version
		}
	}
	return 0
}

// Target is a file to publish as a TUF target.
type Target struct {
	Path   string
	Length int64
	SHA256 string // hex
	Custom *json.RawMessage
}

// StorageName is where the target's bytes live under targets/.
func (t Target) StorageName() string { return ConsistentName(t.Path, t.SHA256) }

// NewTarget describes data as a target at path.
func NewTarget(path string, data []byte, custom *json.RawMessage) Target {
	sum := sha256.Sum256(data)
	return Target{Path: path, Length: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Custom: custom}
}

// Lookup returns the target at path, if any.
func (r *Repo) Lookup(path string) (*metadata.TargetFiles, bool, error) {
	m, _, err := r.targetsOf(path)
	if err != nil {
		return nil, false, err
	}
	tf, ok := m[path]
	return tf, ok, nil
}

// AddImmutable adds a target that must never change. Adding the same path
// with identical length, hash and custom metadata again is a no-op; other
// content is ErrConflict.
func (r *Repo) AddImmutable(t Target) (added bool, err error) {
	if err := ValidateTargetPath(t.Path); err != nil {
		return false, err
	}
	m, _, err := r.targetsOf(t.Path)
	if err != nil {
		return false, err
	}
	if old, ok := m[t.Path]; ok {
		sameBytes := old.Length == t.Length && hex.EncodeToString(old.Hashes["sha256"]) == t.SHA256
		if sameBytes && sameCustom(old.Custom, t.Custom) {
			return false, nil
		}
		if sameBytes {
			// The same file with other release metadata: say which.
			return false, fmt.Errorf("%w: %s is published with the same file but other release metadata (%s); a published release does not change: give the same options as when it was published, or publish a new version",
				ErrConflict, t.Path, customDiff(old.Custom, t.Custom))
		}
		return false, fmt.Errorf("%w: %s (published sha256 %s, this one %s); publish a new version instead",
			ErrConflict, t.Path, hex.EncodeToString(old.Hashes["sha256"]), t.SHA256)
	}
	return true, r.set(t)
}

// Set adds or replaces a mutable target (a channel pointer, the device policy).
func (r *Repo) Set(t Target) error {
	if err := ValidateTargetPath(t.Path); err != nil {
		return err
	}
	return r.set(t)
}

func (r *Repo) set(t Target) error {
	m, bin, err := r.targetsOf(t.Path)
	if err != nil {
		return err
	}
	sum, _ := hex.DecodeString(t.SHA256)
	tf := metadata.TargetFile()
	tf.Path = t.Path
	tf.Length = t.Length
	tf.Hashes = metadata.Hashes{"sha256": sum}
	tf.Custom = t.Custom
	m[t.Path] = tf
	r.markDirty(bin)
	return nil
}

func sameCustom(a, b *json.RawMessage) bool {
	if a == nil || b == nil {
		return a == b
	}
	var va, vb any
	if json.Unmarshal(*a, &va) != nil || json.Unmarshal(*b, &vb) != nil {
		return false
	}
	ca, _ := json.Marshal(va)
	cb, _ := json.Marshal(vb)
	return string(ca) == string(cb)
}

// Commit signs a new version of targets, snapshot and timestamp and returns
// their files in the order they must be written: targets, snapshot, then
// timestamp.json, the switch that makes the new state visible.
func (r *Repo) Commit(keys Keys, now time.Time) ([]File, error) {
	if r.staleTargets {
		if err := r.MarkAllDirty(); err != nil {
			return nil, err
		}
		r.rekeyBins()
		r.staleTargets = false
	}
	var files []File
	// Changed bins first (a flat repository has none).
	names := make([]string, 0, len(r.dirty))
	for name := range r.dirty {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) > 0 {
		if err := r.checkBinKeys(keys); err != nil {
			return nil, err
		}
	}
	for _, name := range names {
		b := r.bins[name]
		v, err := r.nextVersion(b.Signed.Version, name)
		if err != nil {
			return nil, err
		}
		b.Signed.Version = v
		b.Signed.Expires = expiry(RoleTargets, now)
		b.ClearSignatures()
		for _, s := range keys[RoleTargets] {
			if err := signTargets(b, s); err != nil {
				return nil, fmt.Errorf("sign %s: %w", name, err)
			}
		}
		data, err := b.ToBytes(false)
		if err != nil {
			return nil, err
		}
		r.Snapshot.Signed.Meta[name+".json"] = metadata.MetaFile(b.Signed.Version)
		files = append(files, File{Name: fmt.Sprintf("%d.%s.json", b.Signed.Version, name), Data: data})
	}
	r.dirty = map[string]bool{}
	if r.succinct() == nil || r.topDirty {
		v, err := r.nextVersion(r.Targets.Signed.Version, RoleTargets)
		if err != nil {
			return nil, err
		}
		r.Targets.Signed.Version = v
		r.Targets.Signed.Expires = expiry(RoleTargets, now)
		if err := signChecked(r, RoleTargets, r.Targets, keys); err != nil {
			return nil, err
		}
		tBytes, err := r.Targets.ToBytes(true)
		if err != nil {
			return nil, err
		}
		r.Snapshot.Signed.Meta["targets.json"] = metaFile(r.Targets.Signed.Version, tBytes)
		files = append(files, File{Name: fmt.Sprintf("%d.targets.json", r.Targets.Signed.Version), Data: tBytes})
		r.topDirty = false
	}
	snap, err := r.commitSnapshotTimestamp(keys, now)
	if err != nil {
		return nil, err
	}
	return append(files, snap...), nil
}

// Refresh re-signs snapshot and timestamp with new versions and expiries,
// for a timer that keeps the repository from expiring.
func (r *Repo) Refresh(keys Keys, now time.Time) ([]File, error) {
	return r.commitSnapshotTimestamp(keys, now)
}

func (r *Repo) commitSnapshotTimestamp(keys Keys, now time.Time) ([]File, error) {
	v, err := r.nextVersion(r.Snapshot.Signed.Version, RoleSnapshot)
	if err != nil {
		return nil, err
	}
	r.Snapshot.Signed.Version = v
	r.Snapshot.Signed.Expires = expiry(RoleSnapshot, now)
	if err := signChecked(r, RoleSnapshot, r.Snapshot, keys); err != nil {
		return nil, err
	}
	sBytes, err := r.Snapshot.ToBytes(true)
	if err != nil {
		return nil, err
	}
	r.Timestamp.Signed.Version++
	r.Timestamp.Signed.Expires = expiry(RoleTimestamp, now)
	r.Timestamp.Signed.Meta["snapshot.json"] = metaFile(r.Snapshot.Signed.Version, sBytes)
	if err := signChecked(r, RoleTimestamp, r.Timestamp, keys); err != nil {
		return nil, err
	}
	tsBytes, err := r.Timestamp.ToBytes(true)
	if err != nil {
		return nil, err
	}
	return []File{
		{Name: fmt.Sprintf("%d.snapshot.json", r.Snapshot.Signed.Version), Data: sBytes},
		{Name: "timestamp.json", Data: tsBytes},
	}, nil
}

func metaFile(version int64, data []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(data)
	mf := metadata.MetaFile(version)
	mf.Length = int64(len(data))
	mf.Hashes = metadata.Hashes{"sha256": sum[:]}
	return mf
}

// signChecked signs md with the role's keys and checks the result against
// the root, so a wrong key fails here rather than at every agent.
func signChecked[T metadata.Roles](r *Repo, role string, md *metadata.Metadata[T], keys Keys) error {
	if len(keys[role]) == 0 {
		return fmt.Errorf("no %s key given", role)
	}
	if err := signRole(md, keys[role]); err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	if err := r.Root.VerifyDelegate(role, md); err != nil {
		rr := r.Root.Signed.Roles[role]
		return r.wrongKey(role, keys[role], rr.KeyIDs, rr.Threshold, err)
	}
	return nil
}

// customDiff names the top-level fields of the "bc" release metadata in
// which two targets' custom metadata differ ("bc.health_check, bc.features").
func customDiff(a, b *json.RawMessage) string {
	fields := func(m *json.RawMessage) map[string]json.RawMessage {
		var top map[string]json.RawMessage
		if m != nil {
			json.Unmarshal(*m, &top)
		}
		inner := map[string]json.RawMessage{}
		if bc, ok := top["bc"]; ok {
			json.Unmarshal(bc, &inner)
		}
		for k, v := range top {
			if k != "bc" {
				inner["custom."+k] = v
			}
		}
		return inner
	}
	fa, fb := fields(a), fields(b)
	var diff []string
	for k, v := range fa {
		if w, ok := fb[k]; !ok || !bytes.Equal(compactJSON(v), compactJSON(w)) {
			diff = append(diff, k)
		}
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			diff = append(diff, k)
		}
	}
	sort.Strings(diff)
	if len(diff) == 0 {
		return "its custom metadata"
	}
	return strings.Join(diff, ", ")
}

func compactJSON(m json.RawMessage) []byte {
	var b bytes.Buffer
	if json.Compact(&b, m) != nil {
		return m
	}
	return b.Bytes()
}
