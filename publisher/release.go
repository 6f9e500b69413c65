package publisher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/internal/regfile"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// ErrUsage marks bad input from the user (exit code 2).
var ErrUsage = errs.ErrUsage

// ErrRepoExists: init found a repository already there.
var ErrRepoExists = errors.New("repository already exists")

// usagef is a usage error (an *errs.UsageError); its message names the flag.
func usagef(format string, args ...any) error {
	return errs.Usagef("", format, args...)
}

// usage makes err a usage error.
func usage(err error) error { return errs.Usage("", err) }

// Init creates a new repository in an empty store: root, the seeded device
// policy target, and version 1 of targets, snapshot and timestamp.
func Init(ctx context.Context, s Store, keys repo.Keys, now time.Time) (*repo.Repo, error) {
	return InitBins(ctx, s, keys, now, 0)
}

// InitBins is Init with targets delegated to bins hashed bins (TAP 15):
// choose about the square root of the number of targets you expect.
func InitBins(ctx context.Context, s Store, keys repo.Keys, now time.Time, bins int) (*repo.Repo, error) {
	if ok, err := s.Exists(ctx, "metadata/timestamp.json"); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("%w: metadata/timestamp.json is already there", ErrRepoExists)
	}
	if ok, err := s.Exists(ctx, "metadata/1.root.json"); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("%w: metadata/1.root.json is already there", ErrRepoExists)
	}
	r, rootFile, err := repo.NewBins(keys, now, bins)
	if err != nil {
		return nil, usagef("--bins: %v", err)
	}
	policy, err := json.MarshalIndent(repo.DevicePolicy{PHIDeviceClasses: repo.DefaultPHIDeviceClasses}, "", "  ")
	if err != nil {
		return nil, err
	}
	t := repo.NewTarget(repo.DevicePolicyPath, append(policy, '\n'), nil)
	if err := r.Set(t); err != nil {
		return nil, err
	}
	files, err := r.Commit(keys, now)
	if err != nil {
		return nil, err
	}
	if err := putBytesIfAbsent(ctx, s, "targets/"+t.StorageName(), append(policy, '\n')); err != nil {
		return nil, err
	}
	if err := writeMetadata(ctx, s, r, append([]repo.File{rootFile}, files...)); err != nil {
		return nil, err
	}
	return r, nil
}

// ReleaseOptions are the inputs of `bcpublish release add`.
type ReleaseOptions struct {
	Component   string
	Version     string
	Platform    string
	File        string
	Signature   string // default: File + ".p7s"
	Channels    []string
	Install     string // default: archive for .tar.gz/.tgz/.zip, else file
	HealthCheck []string
	// Installer is the command of an "installer" release ("{file}" is the
	// installer's path); .msi and .exe get msiexec / quiet defaults.
	Installer []string
	Features  []repo.Feature
	// DeltaFrom lists earlier versions to publish bsdiff patches from.
	DeltaFrom []string
	// Percent limits the release to that share of devices (0 or 100: all).
	Percent int
	Now     time.Time
	// A release with features needs a code-signed gate manifest
	// (repo/gate.go): either GateManifest with its detached CMS signature
	// GateSignature (made with bcpublish release gate and signed elsewhere,
	// e.g. in an HSM), or GateSign to sign it here.
	GateManifest  []byte
	GateSignature []byte
	GateSign      CodeSigner
}

// ReleaseResult says what release add did.
type ReleaseResult struct {
	Path             string
	SHA256           string
	Length           int64
	Channels         []string
	AlreadyPresent   bool
	TargetsVersion   int64
	TimestampVersion int64
	Verified         *signer.Result
	// Warnings: roles of the repository as committed that expire within
	// ExpiryWarnWindow (root, targets) or whose refresh timer looks stopped.
	Warnings []string
}

// ExpiryWarnWindow is how far ahead a publish warns of root and targets
// expiry.
const ExpiryWarnWindow = 14 * 24 * time.Hour

// DefaultInstallKind picks the install kind from a file name.
func DefaultInstallKind(file string) string {
	lower := strings.ToLower(file)
	for _, ext := range []string{".tar.gz", ".tgz", ".zip"} {
		if strings.HasSuffix(lower, ext) {
			return repo.InstallArchive
		}
	}
	return repo.InstallFile
}

func (o *ReleaseOptions) validate() error {
	if err := repo.ValidateName("component", o.Component); err != nil {
		return usagef("--component: %v", err)
	}
	if _, err := repo.ParseVersion(o.Version); err != nil {
		return usagef("--version %w", err)
	}
	if err := repo.ValidatePlatform(o.Platform); err != nil {
		return usagef("--platform: %v", err)
	}
	if o.File == "" {
		return usagef("--file is required")
	}
	if err := repo.ValidateFileName(filepath.Base(o.File)); err != nil {
		return usagef("--file: %v", err)
	}
	if signer.KindFor(o.File) == signer.KindAuthenticode {
		if o.Signature != "" {
			return usagef("--signature: %s carries an embedded Authenticode signature; no .p7s is used", filepath.Base(o.File))
		}
	} else if o.Signature == "" {
		o.Signature = o.File + repo.SignatureSuffix
	}
	if len(o.Channels) == 0 {
		o.Channels = []string{"stable"}
	}
	for _, c := range o.Channels {
		if err := repo.ValidateName("channel", c); err != nil {
			return usagef("--channel: %v", err)
		}
	}
	if o.Install == "" {
		o.Install = DefaultInstallKind(o.File)
	}
	switch o.Install {
	case repo.InstallArchive, repo.InstallFile, repo.InstallSelf:
		if len(o.Installer) > 0 {
			return usagef("--installer is only for --install installer")
		}
	case repo.InstallInstaller:
		if len(o.Installer) == 0 {
			switch strings.ToLower(filepath.Ext(o.File)) {
			case ".msi":
				o.Installer = []string{"msiexec", "/i", "{file}", "/qn", "/norestart"}
			case ".exe":
				o.Installer = []string{"{file}", "/quiet", "/norestart"}
			default:
				return usagef("--install installer: give the command with --installer \"CMD {file} ARGS\"")
			}
		}
	default:
		return usagef("--install %q: want archive, file, installer or self", o.Install)
	}
	if o.Install == repo.InstallArchive && DefaultInstallKind(o.File) != repo.InstallArchive {
		return usagef("--install archive: %s is not a .tar.gz or .zip file", o.File)
	}
	if err := validPercent(o.Percent); err != nil {
		return err
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return nil
}

// fileDigest streams the --file artifact once for its length and sha256.
func fileDigest(path string) (int64, string, error) {
	f, _, err := openFlagFile("--file", path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// AddRelease publishes a code-signed artifact. Order: inputs, code signature
// (with the agents' verifier), repository verification, immutability, then
// writes: targets, versioned metadata, timestamp.json last. The work is in
// three steps: readRelease reads and verifies the inputs, planRelease works
// out what will be written (without a store), commitRelease writes it.
func AddRelease(ctx context.Context, s Store, keys repo.Keys, trust *signer.Trust, o ReleaseOptions, log *slog.Logger) (*ReleaseResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	r, in, err := readRelease(ctx, s, trust, o, log)
	if err != nil {
		return nil, err
	}
	p, err := planRelease(r, in)
	if err != nil {
		return nil, err
	}
	defer p.removePatches()
	return commitRelease(ctx, s, keys, r, p, in)
}

// releaseInput is what a release's plan is made from: the options (as
// validated), the artifact as read and verified, and what the repository
// holds of the component. Nothing in it is read again.
type releaseInput struct {
	o        ReleaseOptions
	kind     string // signer.KindCMS or signer.KindAuthenticode
	sig      []byte // the detached code signature (KindCMS)
	length   int64
	sum      string         // the artifact's sha256, hex
	trust    *signer.Trust  // the agents' verifier, with the repository's CRLs
	verified *signer.Result // the artifact's code signature
	index    *repo.ReleaseIndex
	patcher  patcher // makes the --delta-from patches
}

// readRelease reads and checks what a release is made of: the artifact and
// its code signature (verified as every agent will, with the repository's
// CRLs), the archive's contents, and the repository with the component's
// release index.
func readRelease(ctx context.Context, s Store, trust *signer.Trust, o ReleaseOptions, log *slog.Logger) (*repo.Repo, releaseInput, error) {
	in := releaseInput{o: o, kind: signer.KindFor(o.File)}
	f, _, err := openFlagFile("--file", o.File)
	if err != nil {
		return nil, in, err
	}
	f.Close()
	if in.kind == signer.KindCMS {
		if in.sig, err = readSmall("--signature", o.Signature, signer.MaxSignatureSize); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, in, fmt.Errorf("%w (every artifact needs a detached code signature)", err)
			}
			return nil, in, err
		}
	}
	r, err := loadForWrite(ctx, s)
	if err != nil {
		return nil, in, err
	}
	// The same verifier, with the same CRLs, as every agent will use.
	crls, err := repoCRLs(ctx, s, r)
	if err != nil {
		return nil, in, err
	}
	if in.trust, err = trust.WithCRLs(crls); err != nil {
		return nil, in, err
	}
	if in.verified, err = in.trust.VerifyFile(o.File, in.kind, in.sig); err != nil {
		return nil, in, fmt.Errorf("%s: %w", o.File, err)
	}
	log.Info("code signature verified", "file", o.File, "publisher", in.verified.Publisher.String())
	// What the agents will do with it: an archive is unpacked by the very
	// code (and rules) every agent runs.
	if o.Install == repo.InstallArchive {
		if err := checkArchive(o.File); err != nil {
			return nil, in, err
		}
	}
	if in.length, in.sum, err = fileDigest(o.File); err != nil {
		return nil, in, err
	}
	if in.index, err = releaseIndex(ctx, s, r, o.Component, o.Platform); err != nil {
		return nil, in, err
	}
	in.patcher = &bsdiffPatcher{ctx: ctx, s: s, file: o.File}
	return r, in, nil
}

// releasePlan is what a release add will write, worked out before anything
// is: the targets to add with the bytes each is published from.
type releasePlan struct {
	// Release is the artifact's release metadata (features, gate manifest,
	// deltas, release time), as it is in Artifact.Custom.
	Release  *repo.Release
	Artifact repo.Target
	File     string // the artifact's bytes (--file)
	// Patches are the --delta-from patches (temporary files).
	Patches []patchFile
	// Signature is the detached code signature (nil for Authenticode).
	Signature *blob
	// Pointers are the channel pointers that change.
	Pointers []blob
	// Index is the component's release index if it changes (it lists the
	// release for the first time), else nil.
	Index *blob
}

// blob is a target published from bytes in memory.
type blob struct {
	Target repo.Target
	Data   []byte
}

func newBlob(path string, data []byte) *blob {
	return &blob{Target: repo.NewTarget(path, data, nil), Data: data}
}

// planRelease works out what publishing in means for the repository r,
// which it reads but does not change: the release metadata (with its gate
// manifest), that the version is not published as another artifact, the
// deltas, the signature, channel pointers and release index. It uses no
// store; the only work outside memory is in.patcher's (bsdiff) and the
// gate manifest's signer (--codesign-key), when the release has them.
func planRelease(r *repo.Repo, in releaseInput) (*releasePlan, error) {
	o := in.o
	artPath := repo.ArtifactPath(o.Component, o.Platform, o.Version, filepath.Base(o.File))
	rel := &repo.Release{
		Component: o.Component, Version: o.Version, Platform: o.Platform,
		Install: o.Install, Codesign: in.kind, HealthCheck: o.HealthCheck, Features: o.Features, Installer: o.Installer,
		Released: o.Now.UTC().Truncate(time.Second).Format(time.RFC3339),
	}
	if err := o.gate(rel, in.sum, in.trust); err != nil {
		return nil, err
	}
	if err := rel.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	if prev, ok := in.index.Releases[o.Version]; ok && prev != artPath {
		return nil, fmt.Errorf("%w: %s %s for %s is already published as %s", repo.ErrConflict, o.Component, o.Version, o.Platform, prev)
	}
	p := &releasePlan{Release: rel, File: o.File}
	var err error
	if p.Patches, err = planDeltas(r, in.index, o, artPath, in.sum, rel, in.patcher); err != nil {
		return nil, err
	}
	if p.Artifact, p.Release, err = artifactTarget(r, artPath, in.length, in.sum, rel); err != nil {
		p.removePatches()
		return nil, err
	}
	if in.kind == signer.KindCMS {
		p.Signature = newBlob(repo.SignaturePath(artPath), in.sig)
	}
	if p.Pointers, err = planPointers(r, o, artPath); err != nil {
		p.removePatches()
		return nil, err
	}
	if in.index.Releases[o.Version] != artPath {
		ix := &repo.ReleaseIndex{Releases: maps.Clone(in.index.Releases)}
		ix.Releases[o.Version] = artPath
		p.Index = newBlob(repo.ReleasesPath(o.Component, o.Platform), ix.Marshal())
	}
	return p, nil
}

// artifactTarget is the artifact's target with rel as its custom metadata,
// and the release as published. Publishing the identical artifact again
// keeps its first release time.
func artifactTarget(r *repo.Repo, artPath string, length int64, sum string, rel *repo.Release) (repo.Target, *repo.Release, error) {
	custom, err := rel.Custom()
	if err != nil {
		return repo.Target{}, nil, err
	}
	art := repo.Target{Path: artPath, Length: length, SHA256: sum, Custom: custom}
	old, ok, err := r.Lookup(artPath)
	if err != nil {
		return repo.Target{}, nil, err
	}
	if ok && old.Length == length && hex.EncodeToString(old.Hashes["sha256"]) == sum {
		if oldRel, err := repo.ParseRelease(old.Custom); err == nil {
			same := *rel
			same.Released = oldRel.Released
			if c, err := same.Custom(); err == nil {
				art.Custom = c
				rel = &same
			}
		}
	}
	return art, rel, nil
}

// planPointers are the pointers of o.Channels at artPath (for o.Percent of
// devices) that are not already so.
func planPointers(r *repo.Repo, o ReleaseOptions, artPath string) ([]blob, error) {
	var out []blob
	for _, ch := range o.Channels {
		pt, data, err := pointerTarget(o.Component, o.Platform, ch, artPath, o.Percent)
		if err != nil {
			return nil, err
		}
		if old, ok, err := r.Lookup(pt.Path); err != nil {
			return nil, err
		} else if ok && hex.EncodeToString(old.Hashes["sha256"]) == pt.SHA256 {
			continue
		}
		if slices.ContainsFunc(out, func(b blob) bool { return b.Target.Path == pt.Path }) {
			continue // a channel named twice
		}
		out = append(out, blob{Target: pt, Data: data})
	}
	return out, nil
}

// removePatches removes the plan's temporary patch files.
func (p *releasePlan) removePatches() {
	for _, pf := range p.Patches {
		if pf.file != "" {
			os.Remove(pf.file)
		}
	}
}

// stage adds the plan's targets to r (in memory). The artifact, patches and
// signature are immutable: the same path with other content is refused.
// It reports whether the artifact is new, and whether anything is.
func (p *releasePlan) stage(r *repo.Repo) (addedArt, changed bool, err error) {
	if addedArt, err = r.AddImmutable(p.Artifact); err != nil {
		return false, false, err
	}
	for _, pf := range p.Patches {
		if _, err := r.AddImmutable(pf.target); err != nil {
			return false, false, err
		}
	}
	addedSig := false
	if p.Signature != nil {
		if addedSig, err = r.AddImmutable(p.Signature.Target); err != nil {
			return false, false, err
		}
	}
	for _, b := range p.Pointers {
		if err := r.Set(b.Target); err != nil {
			return false, false, err
		}
	}
	if p.Index != nil {
		if err := r.Set(p.Index.Target); err != nil {
			return false, false, err
		}
	}
	return addedArt, addedArt || addedSig || len(p.Pointers) > 0 || p.Index != nil, nil
}

// commitRelease stages the plan in r, signs the new metadata and writes, in
// order: the artifact, patches, signature, channel pointers and release
// index, then the versioned metadata, timestamp.json last. A plan that
// changes nothing writes nothing.
func commitRelease(ctx context.Context, s Store, keys repo.Keys, r *repo.Repo, p *releasePlan, in releaseInput) (*ReleaseResult, error) {
	addedArt, changed, err := p.stage(r)
	if err != nil {
		return nil, err
	}
	res := &ReleaseResult{Path: p.Artifact.Path, SHA256: p.Artifact.SHA256, Length: p.Artifact.Length, Channels: in.o.Channels, Verified: in.verified}
	if !changed {
		res.AlreadyPresent = true
		res.TargetsVersion = r.Targets.Signed.Version
		res.TimestampVersion = r.Timestamp.Signed.Version
		return res, nil
	}
	files, err := r.Commit(keys, in.o.Now)
	if err != nil {
		return nil, err
	}
	// Nothing has been written so far. Now: targets, metadata, timestamp.
	if err := p.writeTargets(ctx, s, addedArt); err != nil {
		return nil, err
	}
	if err := writeMetadata(ctx, s, r, files); err != nil {
		return nil, err
	}
	res.TargetsVersion = r.Targets.Signed.Version
	res.TimestampVersion = r.Timestamp.Signed.Version
	res.Warnings = expiryWarnings(r, in.o.Now, ExpiryWarnWindow)
	return res, nil
}

// writeTargets writes the plan's targets: the artifact (if new), patches,
// signature, channel pointers, release index.
func (p *releasePlan) writeTargets(ctx context.Context, s Store, addedArt bool) error {
	if addedArt {
		if err := putFileIfAbsent(ctx, s, "targets/"+p.Artifact.StorageName(), p.File, p.Artifact.SHA256); err != nil {
			return err
		}
	}
	for _, pf := range p.Patches {
		if err := putFileIfAbsent(ctx, s, "targets/"+pf.target.StorageName(), pf.file, pf.target.SHA256); err != nil {
			return err
		}
	}
	blobs := make([]blob, 0, len(p.Pointers)+2)
	if p.Signature != nil {
		blobs = append(blobs, *p.Signature)
	}
	blobs = append(blobs, p.Pointers...)
	if p.Index != nil {
		blobs = append(blobs, *p.Index)
	}
	for _, b := range blobs {
		if err := putBytesIfAbsent(ctx, s, "targets/"+b.Target.StorageName(), b.Data); err != nil {
			return err
		}
	}
	return nil
}

// repoCRLs reads the repository's trust/crl/ targets, checked against
// their signed hashes.
func repoCRLs(ctx context.Context, s Store, r *repo.Repo) (map[string][]byte, error) {
	out := map[string][]byte{}
	for p, tf := range r.Targets.Signed.Targets {
		if !strings.HasPrefix(p, repo.CRLPrefix) {
			continue
		}
		data, err := readAll(ctx, s, "targets/"+repo.ConsistentName(p, hex.EncodeToString(tf.Hashes["sha256"])), signer.MaxCRLSize)
		if err != nil {
			return nil, fmt.Errorf("CRL %s: %w", p, err)
		}
		if err := tf.VerifyLengthHashes(data); err != nil {
			return nil, fmt.Errorf("%w: CRL %s does not match its metadata: %v", repo.ErrVerification, p, err)
		}
		out[p] = data
	}
	return out, nil
}

// putFileIfAbsent streams a file into the store unless the hash-named
// object is already there; the name carries its hash, so it never changes.
func putFileIfAbsent(ctx context.Context, s Store, name, path, sum string) error {
	f, fi, err := regfile.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := s.PutIfAbsent(ctx, name, f, fi.Size()); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("publish %s: %w", name, err)
	}
	// The file must not have changed since it was verified and hashed.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("publish %s: %s changed while it was being published", name, path)
	}
	return nil
}

// ReleaseInfo is one published artifact, for `release list`.
type ReleaseInfo struct {
	Path      string   `json:"path"`
	Component string   `json:"component"`
	Version   string   `json:"version"`
	Platform  string   `json:"platform"`
	Install   string   `json:"install"`
	Length    int64    `json:"length"`
	SHA256    string   `json:"sha256"`
	Released  string   `json:"released"`
	Channels  []string `json:"channels"`
	// Yanked says the release was withdrawn (release yank): agents never
	// install it. YankReason is the reason given then ("" when not yanked).
	Yanked     bool   `json:"yanked"`
	YankReason string `json:"yank_reason"`
}

// ListReleases lists every artifact with the channels that point at it.
func ListReleases(ctx context.Context, s Store) ([]ReleaseInfo, error) {
	r, err := loadRepo(ctx, s)
	if err != nil {
		return nil, err
	}
	byPath := map[string]*ReleaseInfo{}
	var out []*ReleaseInfo
	all, err := r.AllTargets()
	if err != nil {
		return nil, err
	}
	for p, tf := range all {
		if tf.Custom == nil {
			continue
		}
		rel, err := repo.ParseRelease(tf.Custom)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", p, err)
		}
		info := &ReleaseInfo{Path: p, Component: rel.Component, Version: rel.Version, Platform: rel.Platform,
			Install: rel.Install, Length: tf.Length, SHA256: hex.EncodeToString(tf.Hashes["sha256"]),
			Released: rel.Released, Channels: []string{}, Yanked: rel.Yanked, YankReason: rel.YankReason}
		byPath[p] = info
		out = append(out, info)
	}
	for p, tf := range all {
		dir, file := filepath.Split(filepath.FromSlash(p))
		if filepath.Base(dir) != "channels" || !strings.HasSuffix(file, ".json") {
			continue
		}
		data, err := readAll(ctx, s, "targets/"+repo.ConsistentName(p, hex.EncodeToString(tf.Hashes["sha256"])), repo.MaxPointerSize)
		if err != nil {
			return nil, fmt.Errorf("channel %s: %w", p, err)
		}
		ptr, err := repo.ParsePointer(data)
		if err != nil {
			return nil, fmt.Errorf("channel %s: %w", p, err)
		}
		if info := byPath[ptr.Release]; info != nil {
			info.Channels = append(info.Channels, strings.TrimSuffix(file, ".json"))
			sort.Strings(info.Channels)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Component != b.Component {
			return a.Component < b.Component
		}
		if a.Platform != b.Platform {
			return a.Platform < b.Platform
		}
		return repo.CompareVersions(a.Version, b.Version) < 0
	})
	res := make([]ReleaseInfo, len(out))
	for i, o := range out {
		res[i] = *o
	}
	return res, nil
}
