package client

// Importing an offline bundle (issue 18). The design, argued in
// docs/threat-model.md ("Offline bundles"):
//
//   - The bundle is verified by the agent's own online code: go-tuf's
//     refresh from the agent's trusted root (the root chain, then timestamp,
//     snapshot and targets with signatures, thresholds, versions, lengths
//     and hashes), the agent's delegation walk for the bins, the streaming
//     hash-checked download into staging, the gate manifests, the device
//     policy, the CRLs and the code signature. Only the transport differs
//     (bundleTransport), and the reference time.
//   - Freshness: the reference time of the import's refresh is the bundle's
//     creation time, which the bundle statement states and a threshold of
//     the targets keys signs; the statement's own window (created to
//     expires, at most repo.MaxBundleValidity) must contain now, and the
//     root must be unexpired now. So timestamp, snapshot and targets must
//     have been current when the bundle was made, and the bundle is
//     importable only inside its bounded window. Online agents never see a
//     statement (it is not TUF metadata) and keep judging expiry at now.
//   - Rollback: the refresh starts from the agent's trusted metadata (the
//     online cache or the last import's, whichever is newer), so go-tuf
//     refuses any metadata older than what the agent already trusts.
//   - What an import keeps: the root, if the bundle brought a newer one (a
//     root has no freeze semantics beyond its own expiry, which is checked
//     at now), and its timestamp, snapshot and targets under tuf/imported/
//     as the floor of the next import. The online cache's timestamp,
//     snapshot and targets are never written: an import cannot lower, nor
//     raise, what an online refresh compares against.
//   - Everything the import writes before it has verified the bundle is
//     under staging/ (the session's scratch metadata, the staged files);
//     a refused bundle leaves the installed state, tuf/ and state.json as
//     they were, and staging/ too: what an earlier bundle or an online
//     stage left there is parked under staging/.import/parked while the
//     import works and put back if it fails (an offline PC could not
//     download it again).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/repo"
)

// ErrBundleNotNewer: every release a bundle carries for this PC is older
// than what is installed (or the bundle carries nothing for it): nothing
// was imported. An operational refusal (exit 1), not an attack: the
// agent never downgrades.
var ErrBundleNotNewer = errors.New("the bundle has nothing newer for this PC")

// EventBundleImported is the audit entry of a bundle that verified and
// was staged from.
const EventBundleImported EventKind = "bundle-imported"

// importScratch is the session's metadata directory during an import,
// under staging/ (removed when the import ends).
const importScratch = ".import"

// importedDir is where the last import's verified timestamp, snapshot and
// targets are kept: the floor of the next import.
const importedDir = "imported"

// bundleSource is an opened, shape-checked bundle and what the import has
// learned of it.
type bundleSource struct {
	b       *bundleFile
	created time.Time
	now     time.Time
	scratch string // <state>/staging/.import
	// parked: the components whose staging directory this import has
	// moved aside (park); components are staged side by side.
	mu     sync.Mutex
	parked map[string]bool
}

// ImportOptions tune an import.
type ImportOptions struct {
	// Now is the clock the bundle's window is judged by (zero: now).
	Now time.Time
}

// ImportReport says what an import did, per component the bundle carries
// for this PC.
type ImportReport struct {
	Bundle     string            `json:"bundle"`
	Created    time.Time         `json:"created"`
	Expires    time.Time         `json:"expires"`
	Timestamp  int64             `json:"timestamp_version"`
	Components []ComponentReport `json:"components"`
	// Skipped are the agent's components the bundle does not carry, and
	// why.
	Skipped []string `json:"skipped,omitempty"`
}

// Import verifies the bundle at file and stages what it carries for this
// PC, exactly as Stage does from the repository; Apply then installs it.
// A refused bundle is ErrVerification (a possible attack: exit 3) and is
// recorded in the audit log; a bundle with nothing newer is
// ErrBundleNotNewer. A release that waits for a person's authorization is
// staged and ErrAuthorizationRequired is returned with the report. A file
// that cannot be read (missing, no permission, a directory, a FIFO, a
// device) is a usage error (exit 2), neither audited nor notified.
func (a *Agent) Import(ctx context.Context, file string, o ImportOptions) (*ImportReport, error) {
	f, fi, err := openBundleFile(file)
	switch {
	case errors.Is(err, errBundleLink):
		return nil, a.refuseBundle(ctx, notBundle(file, "%v", err))
	case err != nil:
		return nil, errs.Usagef("", "bundle %s: %v", file, pathless(err))
	}
	defer f.Close()
	rep, err := a.importOpened(ctx, f, file, fi.Size(), o)
	if re := (*bundleReadError)(nil); errors.As(err, &re) && !errors.Is(err, ErrVerification) {
		return rep, errs.Usagef("", "bundle %s cannot be read: %v", file, pathless(re.err))
	}
	return rep, err
}

// pathless is err without the *PathError's repetition of the path.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// importOpened imports the bundle f (opened by openBundleFile, size bytes
// when it was opened; file names it), reading it only through f.
func (a *Agent) importOpened(ctx context.Context, f *os.File, file string, size int64, o ImportOptions) (*ImportReport, error) {
	rep, err := a.importBundle(ctx, f, file, size, o)
	if err != nil && errors.Is(err, ErrVerification) && !errors.Is(err, errRecorded) {
		// Refused before the staging step recorded it: audit it here.
		return rep, a.refuseBundle(ctx, err)
	}
	return rep, unrecorded(err)
}

// refuseBundle records the refusal of a bundle (the audit entry and the
// critical notification of a verification failure) and returns err.
func (a *Agent) refuseBundle(ctx context.Context, err error) error {
	defer a.beginBatch(ctx)()
	return a.failed(err, "", "")
}

// errRecorded marks an error the staging step has already recorded.
var errRecorded = errors.New("recorded")

type recordedError struct{ error }

func (e recordedError) Unwrap() []error { return []error{e.error, errRecorded} }

func unrecorded(err error) error {
	var r recordedError
	if errors.As(err, &r) {
		return r.error
	}
	return err
}

// maxReleasesShown is how many releases a message lists before "and N
// more": a statement may list thousands.
const maxReleasesShown = 5

func (a *Agent) importBundle(ctx context.Context, f *os.File, file string, size int64, o ImportOptions) (*ImportReport, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	b, err := openBundle(f, file, size)
	if err != nil {
		return nil, err
	}
	st := &b.stmt.Signed
	created, err := st.CreatedTime()
	if err != nil {
		return nil, notBundle(file, "%v", err)
	}
	expires, err := st.ExpiresTime()
	if err != nil {
		return nil, notBundle(file, "%v", err)
	}
	// The window, before anything else is trusted: its bounds are checked
	// here and its signature once the root is known (session).
	switch {
	case !expires.After(created) || expires.Sub(created) > repo.MaxBundleValidity:
		return nil, notBundle(file, "its window %s to %s is longer than the %s allowed", st.Created, st.Expires, repo.MaxBundleValidity)
	case created.After(now.Add(repo.BundleClockSkew)):
		return nil, notBundle(file, "it was made at %s, in the future for this PC (clock %s): check the PC's clock", st.Created, now.UTC().Format(time.RFC3339))
	case !now.Before(expires):
		return nil, verifyf("bundle %s expired at %s (made %s): its offline window is over; make a new bundle (bcpublish bundle create) — old metadata is refused as a freeze attack would be", file, st.Expires, st.Created)
	}
	rep := &ImportReport{Bundle: file, Created: created, Expires: expires, Timestamp: st.Timestamp.Version}
	var names []string
	for _, name := range a.cfg.Components {
		if bundleReleaseFor(st, name, a.cfg.Platform) == nil {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: the bundle carries no release of it for %s", name, a.cfg.Platform))
			continue
		}
		names = append(names, name)
	}
	src := &bundleSource{b: b, created: created, now: now, scratch: filepath.Join(a.dir, stagingRoot, importScratch), parked: map[string]bool{}}
	// What a stopped import parked goes back (or, stale, away) first:
	// parking needs the place free.
	if err := a.recoverParked(); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(src.scratch); err != nil {
		return nil, err
	}
	saved := false // state.json holds what this import staged
	defer func() {
		keep := false
		if !saved {
			keep = !src.unpark(a)
		}
		src.removeScratch(keep)
	}()
	a.bundle = src
	defer func() { a.bundle = nil }()
	if len(names) == 0 {
		// Nothing for this PC, by what the statement says: believed only
		// once the statement's signature and the metadata it names have
		// verified (a forged statement is refused, not "nothing for this
		// PC"). Nothing is kept: neither the metadata nor last-import.json
		// (the bundle says nothing of this PC's components).
		if _, err := src.session(ctx, a); err != nil {
			if isNetwork(err) {
				return nil, verifyf("bundle %s is incomplete: %v", file, err)
			}
			return nil, recordedError{a.checkFailed(err)}
		}
		var carried []string
		for _, r := range st.Releases {
			carried = append(carried, r.Component+" "+r.Version+" for "+r.Platform)
		}
		err := fmt.Errorf("%w: bundle %s carries %s; this PC has %s on %s", ErrBundleNotNewer, file, listShort(carried, maxReleasesShown), strings.Join(a.cfg.Components, ", "), a.cfg.Platform)
		a.audit(AuditEvent{Event: EventBundleImported, Detail: fmt.Sprintf("verified bundle %s (made %s, timestamp v%d); nothing imported: it carries nothing for this PC's components on %s", filepath.Base(file), st.Created, st.Timestamp.Version, a.cfg.Platform)})
		return rep, err
	}
	cr, err := a.stageComponents(ctx, names)
	saved = err == nil || errors.Is(err, ErrAuthorizationRequired)
	if err != nil && !errors.Is(err, ErrAuthorizationRequired) {
		if isNetwork(err) {
			// The bundle lacks a file its verified metadata needs.
			err = verifyf("bundle %s is incomplete: %v", file, err)
			return nil, err
		}
		return nil, recordedError{err}
	}
	waiting := err
	if cerr := src.commit(a); cerr != nil {
		return nil, cerr
	}
	stale := 0
	for _, c := range cr.Components {
		if !slices.Contains(names, c.Name) {
			continue
		}
		rep.Components = append(rep.Components, c)
		br := bundleReleaseFor(st, c.Name, a.cfg.Platform)
		if c.Staged == "" && c.Available == "" && c.Installed != "" && repo.CompareVersions(br.Version, c.Installed) < 0 {
			stale++
		}
	}
	a.audit(AuditEvent{Event: EventBundleImported, Detail: fmt.Sprintf("imported bundle %s (made %s, timestamp v%d)", filepath.Base(file), st.Created, st.Timestamp.Version)})
	if stale == len(names) {
		a.noteImport(rep, ImportNothingNewer)
		return rep, fmt.Errorf("%w: bundle %s (made %s) is older than what is installed; nothing was imported", ErrBundleNotNewer, file, st.Created)
	}
	outcome := ImportNothingNewer
	for _, c := range rep.Components {
		if c.Staged != "" {
			outcome = ImportStaged
		}
	}
	if waiting != nil {
		outcome = ImportAwaiting
	}
	a.noteImport(rep, outcome)
	return rep, waiting
}

// importResolvable is kinds less the critical ones while a bundle is
// imported: an import never resolves a verification failure or expired
// metadata it did not raise (an online check's, or another bundle's, for
// the component or the repository).
func (a *Agent) importResolvable(kinds []NoteKind) []NoteKind {
	if a.bundle == nil {
		return kinds
	}
	return slices.DeleteFunc(slices.Clone(kinds), func(k NoteKind) bool {
		return k == NoteVerificationFailure || k == NoteMetadataExpired
	})
}

// listShort joins the first n of list, and says how many more there are.
func listShort(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(list[:n], ", "), len(list)-n)
}

// bundleReleaseFor is the release the statement carries for a component
// on a platform, or nil.
func bundleReleaseFor(st *repo.BundleStatement, component, platform string) *repo.BundleRelease {
	for i, r := range st.Releases {
		if r.Component == component && r.Platform == platform {
			return &st.Releases[i]
		}
	}
	return nil
}

// session opens the import's TUF session: go-tuf's refresh from the
// agent's trusted root over the bundle, judged at the bundle's creation
// time, then the statement verified against the final root and compared
// with what was verified.
func (src *bundleSource) session(ctx context.Context, a *Agent) (*session, error) {
	tufDir := filepath.Join(a.dir, "tuf")
	rootBytes, err := readFileLimited(filepath.Join(tufDir, "root.json"), maxRootSize)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	if err := os.MkdirAll(src.scratch, 0o700); err != nil {
		return nil, err
	}
	if err := src.seed(tufDir); err != nil {
		return nil, err
	}
	base := "https://" + bundleHost
	s, err := openSession(ctx, sessionConfig{
		root:        rootBytes,
		metadataDir: src.scratch,
		metadataURL: base + "/metadata",
		targetsURL:  base + "/targets",
		client:      &http.Client{Transport: &bundleTransport{b: src.b}},
		refTime:     src.created,
		name:        "bundle " + src.b.path,
	})
	if err != nil {
		return nil, err
	}
	tm := s.up.GetTrustedMetadataSet()
	st := &src.b.stmt.Signed
	// The statement: signed by the targets keys of the root the chain
	// reached from the agent's trusted root.
	if err := repo.VerifyBundleStatement(tm.Root, src.b.stmt); err != nil {
		return nil, verifyf("bundle %s: %s is not signed by this PC's repository (%v): a bundle of another repository, or a changed statement; this may be an attack", src.b.path, repo.BundleStatementName, err)
	}
	if tm.Root.Signed.IsExpired(src.now) {
		return nil, verifyf("bundle %s: the repository's root expired at %s", src.b.path, tm.Root.Signed.Expires.UTC().Format(time.RFC3339))
	}
	// What was verified must be what the statement names: the same
	// versions (a bundle whose metadata the agent has newer copies of was
	// already refused by the refresh, as a rollback).
	check := func(role string, got int64, want repo.BundleMeta) error {
		if got != want.Version {
			return verifyf("bundle %s: verified %s is version %d, its statement names version %d (mix-and-match?)", src.b.path, role, got, want.Version)
		}
		return nil
	}
	if err := errors.Join(
		check("timestamp", tm.Timestamp.Signed.Version, st.Timestamp),
		check("snapshot", tm.Snapshot.Signed.Version, st.Snapshot),
		check("targets", tm.Targets[metadata.TARGETS].Signed.Version, st.Targets),
	); err != nil {
		return nil, err
	}
	if tm.Root.Signed.Version < st.Root.Version {
		return nil, verifyf("bundle %s: its statement names root v%d, the chain reached v%d", src.b.path, st.Root.Version, tm.Root.Signed.Version)
	}
	return s, nil
}

// seed puts the agent's trusted timestamp, snapshot and targets into the
// scratch directory for go-tuf to start from: the online cache's, or the
// last import's when those are newer.
func (src *bundleSource) seed(tufDir string) error {
	from := tufDir
	if tsVersion(filepath.Join(tufDir, importedDir)) > tsVersion(tufDir) {
		from = filepath.Join(tufDir, importedDir)
	}
	for _, name := range []string{"timestamp.json", "snapshot.json", "targets.json"} {
		data, err := readFileLimited(filepath.Join(from, name), maxSnapshotSize*8)
		if isNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(src.scratch, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// tsVersion is the version of dir/timestamp.json (0: none or unreadable).
// Reading it unverified only chooses the seed: go-tuf verifies what it
// loads.
func tsVersion(dir string) int64 {
	data, err := readFileLimited(filepath.Join(dir, "timestamp.json"), maxTimestampSize)
	if err != nil {
		return 0
	}
	var md struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if json.Unmarshal(data, &md) != nil {
		return 0
	}
	return md.Signed.Version
}

// commit keeps what a successful import verified: a newer root replaces
// tuf/root.json, and the timestamp, snapshot and targets become the next
// import's floor (tuf/imported/). Versions only go up.
func (src *bundleSource) commit(a *Agent) error {
	tufDir := filepath.Join(a.dir, "tuf")
	newRoot, err := readFileLimited(filepath.Join(src.scratch, "root.json"), maxRootSize)
	if err != nil {
		return fmt.Errorf("imported root: %w", err)
	}
	oldRoot, err := readFileLimited(filepath.Join(tufDir, "root.json"), maxRootSize)
	if err != nil {
		return fmt.Errorf("trusted root: %w", err)
	}
	nr, err1 := metadata.Root().FromBytes(newRoot)
	or, err2 := metadata.Root().FromBytes(oldRoot)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if nr.Signed.Version > or.Signed.Version {
		if err := atomicfile.WriteFile(filepath.Join(tufDir, "root.json"), newRoot, 0o600); err != nil {
			return err
		}
		a.log.Info("trusted root updated from a bundle", "version", nr.Signed.Version)
	}
	floor := filepath.Join(tufDir, importedDir)
	if tsVersion(src.scratch) <= tsVersion(floor) {
		return nil
	}
	if err := ensureDir(floor); err != nil {
		return err
	}
	// Snapshot and targets first, timestamp last: a crash in between
	// leaves a timestamp that names a snapshot the floor lacks, which
	// go-tuf discards as it would any stale copy.
	for _, name := range []string{"snapshot.json", "targets.json", "timestamp.json"} {
		data, err := readFileLimited(filepath.Join(src.scratch, name), maxTargetsSize)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(floor, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// bundleRelease is check's choice of release for a component while
// importing: skip when the bundle does not carry it for this platform;
// the channel pointer, followed exactly as online, when the bundle carries
// this agent's channel; otherwise the release the statement names, by
// version (a pinned component only its pinned version).
func (a *Agent) bundleRelease(ctx context.Context, s *session, name string, c *ComponentState) (*Release, *absence, bool, error) {
	br := bundleReleaseFor(&a.bundle.b.stmt.Signed, name, a.cfg.Platform)
	if br == nil {
		return nil, nil, true, nil
	}
	if c.Pinned == "" && br.Channel != "" && br.Channel == a.cfg.Channel {
		rel, none, err := a.channelRelease(ctx, s, name)
		return rel, none, false, err
	}
	if c.Pinned != "" && c.Pinned != br.Version {
		a.log.Info("bundle carries another version than the pinned one", "component", name, "pinned", c.Pinned, "bundle", br.Version)
		return nil, nil, true, nil
	}
	tf, err := s.lookup(br.Path)
	if err != nil {
		return nil, nil, false, verifyf("the bundle names %s, which its verified metadata does not list: %v", br.Path, err)
	}
	meta, err := repo.ParseRelease(tf.Custom)
	if err != nil {
		return nil, nil, false, verifyf("%s: %v", br.Path, err)
	}
	want := repo.ArtifactPath(name, a.cfg.Platform, meta.Version, path.Base(br.Path))
	if meta.Component != name || meta.Platform != a.cfg.Platform || meta.Version != br.Version || want != br.Path {
		return nil, nil, false, verifyf("the bundle names %s as %s %s, whose metadata says %s %s for %s (mix-and-match?)", br.Path, name, br.Version, meta.Component, meta.Version, meta.Platform)
	}
	if meta.Yanked {
		return nil, &absence{soft: true, why: fmt.Sprintf("the bundle's %s %s was withdrawn by its publisher (%s)", name, meta.Version, orNone(meta.YankReason))}, false, nil
	}
	sha, err := targetSHA256(tf)
	if err != nil {
		return nil, nil, false, err
	}
	return &Release{Path: br.Path, Version: meta.Version, SHA256: sha, Length: tf.Length, Meta: meta}, nil, false, nil
}
