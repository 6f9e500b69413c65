package publisher

// Offline bundles (issue 18): one file that carries everything an agent
// needs to verify and install chosen releases without the network. The
// format (docs/design.md, "Offline bundles"):
//
//	an uncompressed tar (USTAR or PAX headers, regular files only), entries
//	in this order:
//	  bundle.json                        the signed statement (repo/bundle.go),
//	                                     which lists every entry that follows
//	  metadata/1.root.json … N.root.json the whole root chain
//	  metadata/timestamp.json
//	  metadata/S.snapshot.json
//	  metadata/T.targets.json
//	  metadata/V.bins-xx.json …          only the bins the chosen targets live in
//	  targets/<dir>/<sha256>.<file> …    small targets (channel pointers,
//	                                     signatures, policy, CRLs) by name, then
//	                                     artifacts and patches by name
//
// Entries are the repository's own bytes: the metadata files exactly as
// published (their signatures are the repository's), targets under their
// consistent-snapshot names. The statement is signed with the targets keys.

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/repo"
)

// BundleOptions say what `bcpublish bundle create` puts into a bundle.
type BundleOptions struct {
	// Components are the components to carry; AllComponents carries every
	// component the repository publishes (for Platform, if set).
	Components    []string
	AllComponents bool
	// Platform limits the bundle to one platform ("": every platform the
	// components are published for).
	Platform string
	// Version carries that version; Channel (default "stable" when
	// Version is empty) carries the release the channel names and the
	// channel pointer, so agents on that channel follow it as online.
	Version string
	Channel string
	// Patches also carries the delta patches of the chosen releases.
	Patches bool
	// ValidFor is the offline window (0: repo.DefaultBundleValidity).
	ValidFor time.Duration
	// Out is the bundle file; it is written to Out.tmp and renamed.
	Out string
	// Now is the creation time (zero: the current time).
	Now time.Time
	// Progress, if set, is told how many bytes of the bundle are written.
	Progress func(done, total int64)
}

// BundleResult says what a bundle holds.
type BundleResult struct {
	File     string
	Size     int64
	Entries  int
	Releases []repo.BundleRelease
	Created  time.Time
	Expires  time.Time
	// ClampedToRoot: the window was cut short to the root's expiry.
	ClampedToRoot bool
	Timestamp     int64
}

// bundleEntry is one entry to write: bytes already read (metadata, small
// targets) or a target to stream from the store.
type bundleEntry struct {
	repo.BundleEntry
	data   []byte // nil: stream object from the store
	object string
}

// CreateBundle writes an offline bundle of the repository in s, signing
// its statement with keys[targets]. It reads the repository only; on any
// error the output file is not there (nor its .tmp).
func CreateBundle(ctx context.Context, s Store, keys repo.Keys, o BundleOptions) (*BundleResult, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	// Every metadata file as read, to carry the exact bytes the
	// repository's verification accepted.
	read := map[string][]byte{}
	r, err := repo.Load(func(name string) ([]byte, error) {
		b, _, err := s.Read(ctx, "metadata/"+name, repo.MaxTargetsSize)
		if err == nil {
			read[name] = b
		}
		return b, err
	})
	if err != nil {
		return nil, err
	}
	if err := r.CheckKeys(repo.RoleTargets, keys[repo.RoleTargets]); err != nil {
		return nil, err
	}
	for _, m := range []struct {
		role    string
		expires time.Time
	}{{"root", r.Root.Signed.Expires}, {"timestamp", r.Timestamp.Signed.Expires}, {"snapshot", r.Snapshot.Signed.Expires}, {"targets", r.Targets.Signed.Expires}} {
		if !m.expires.After(now) {
			return nil, fmt.Errorf("the repository's %s metadata expired at %s: run bcpublish refresh (or re-sign %s) before making a bundle", m.role, m.expires.UTC().Format(time.RFC3339), m.role)
		}
	}
	rels, paths, err := selectBundleReleases(ctx, s, r, o)
	if err != nil {
		return nil, err
	}
	// The device policy and the CRLs travel with every bundle: the agent
	// checks gates and code signatures against them.
	for p := range r.Targets.Signed.Targets {
		if p == repo.DevicePolicyPath || p == repo.SignaturePath(repo.DevicePolicyPath) || strings.HasPrefix(p, repo.CRLPrefix) {
			paths[p] = true
		}
	}
	st := repo.BundleStatement{
		Type: repo.BundleStatementType, Format: repo.BundleFormat,
		Created: repo.BundleTime(now), Releases: rels,
	}
	validFor := o.ValidFor
	if validFor == 0 {
		validFor = repo.DefaultBundleValidity
	}
	expires := now.Add(validFor)
	res := &BundleResult{File: o.Out, Releases: rels, Created: now, Timestamp: r.Timestamp.Signed.Version}
	if re := r.Root.Signed.Expires.UTC().Truncate(time.Second); re.Before(expires) {
		expires, res.ClampedToRoot = re, true
	}
	st.Expires, res.Expires = repo.BundleTime(expires), expires

	// Metadata: the root chain, the top-level roles, the bins in use.
	var meta []bundleEntry
	addMeta := func(name string) (repo.BundleMeta, error) {
		data, ok := read[name]
		if !ok {
			return repo.BundleMeta{}, fmt.Errorf("metadata/%s was not read with the repository", name)
		}
		sum := repo.SHA256Hex(data)
		meta = append(meta, bundleEntry{BundleEntry: repo.BundleEntry{Name: "metadata/" + name, Length: int64(len(data)), SHA256: sum}, data: data})
		return repo.BundleMeta{SHA256: sum}, nil
	}
	for v := int64(1); v <= r.Root.Signed.Version; v++ {
		m, err := addMeta(fmt.Sprintf("%d.root.json", v))
		if err != nil {
			return nil, err
		}
		st.Root = repo.BundleMeta{Version: v, SHA256: m.SHA256}
	}
	tops := []struct {
		name string
		out  *repo.BundleMeta
		ver  int64
	}{
		{"timestamp.json", &st.Timestamp, r.Timestamp.Signed.Version},
		{fmt.Sprintf("%d.snapshot.json", r.Snapshot.Signed.Version), &st.Snapshot, r.Snapshot.Signed.Version},
		{fmt.Sprintf("%d.targets.json", r.Targets.Signed.Version), &st.Targets, r.Targets.Signed.Version},
	}
	for _, t := range tops {
		m, err := addMeta(t.name)
		if err != nil {
			return nil, err
		}
		*t.out = repo.BundleMeta{Version: t.ver, SHA256: m.SHA256}
	}
	// Targets, each looked up (which loads and verifies its bin).
	var small, large []bundleEntry
	bins := map[string]bool{}
	for _, p := range slices.Sorted(mapsKeys(paths)) {
		tf, ok, err := r.Lookup(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s is named by the repository but not listed in its metadata", repo.ErrVerification, p)
		}
		if b := r.BinFor(p); b != "" {
			bins[b] = true
		}
		sum := hex.EncodeToString(tf.Hashes["sha256"])
		if len(sum) != 64 {
			return nil, fmt.Errorf("%w: target %s has no sha256", repo.ErrVerification, p)
		}
		name := repo.ConsistentName(p, sum)
		e := bundleEntry{BundleEntry: repo.BundleEntry{Name: "targets/" + name, Length: tf.Length, SHA256: sum}, object: "targets/" + name}
		if isArtifactLike(tf) {
			large = append(large, e)
		} else {
			small = append(small, e)
		}
	}
	if len(bins) > 0 {
		st.Delegated = map[string]repo.BundleMeta{}
	}
	for _, b := range slices.Sorted(mapsKeys(bins)) {
		sm := r.Snapshot.Signed.Meta[b+".json"]
		if sm == nil {
			return nil, fmt.Errorf("%w: the snapshot does not list %s.json", repo.ErrVerification, b)
		}
		m, err := addMeta(fmt.Sprintf("%d.%s.json", sm.Version, b))
		if err != nil {
			return nil, err
		}
		st.Delegated[b] = repo.BundleMeta{Version: sm.Version, SHA256: m.SHA256}
	}
	entries := append(append(meta, small...), large...)
	if len(entries)+1 > repo.MaxBundleEntries {
		return nil, usagef("the bundle would hold %d files, more than %d: make one bundle per component", len(entries)+1, repo.MaxBundleEntries)
	}
	var total int64
	for _, e := range entries {
		st.Entries = append(st.Entries, e.BundleEntry)
		total += e.Length
	}
	statement, err := repo.SignBundleStatement(st, keys[repo.RoleTargets])
	if err != nil {
		return nil, err
	}
	if len(statement) > repo.MaxBundleStatementSize {
		return nil, usagef("the bundle's statement would be %d bytes, more than %d: make one bundle per component", len(statement), repo.MaxBundleStatementSize)
	}
	all := append([]bundleEntry{{BundleEntry: repo.BundleEntry{Name: repo.BundleStatementName, Length: int64(len(statement))}, data: statement}}, entries...)
	total += int64(len(statement))
	size, err := writeBundle(ctx, s, o.Out, all, now, total, o.Progress)
	if err != nil {
		return nil, err
	}
	res.Size, res.Entries = size, len(all)
	return res, nil
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// isArtifactLike says whether a target goes with the large entries at the
// end: releases (they carry bc metadata) and patches.
func isArtifactLike(tf *metadata.TargetFiles) bool {
	return tf.Custom != nil || strings.HasSuffix(tf.Path, ".bsdiff")
}

func (o *BundleOptions) validate() error {
	if o.Out == "" {
		return usagef("--out is required")
	}
	if !o.AllComponents && len(o.Components) == 0 {
		return usagef("--component is required (or --all-components)")
	}
	if o.AllComponents && len(o.Components) > 0 {
		return usagef("--component and --all-components do not go together")
	}
	for _, c := range o.Components {
		if err := repo.ValidateName("component", c); err != nil {
			return usagef("--component: %v", err)
		}
	}
	if o.Platform != "" {
		if err := repo.ValidatePlatform(o.Platform); err != nil {
			return usagef("--platform: %v", err)
		}
	}
	if o.Version != "" && o.Channel != "" {
		return usagef("--version and --channel do not go together: a bundle carries one version, or the release a channel names")
	}
	if o.Version != "" {
		if _, err := repo.ParseVersion(o.Version); err != nil {
			return usagef("--version: %v", err)
		}
	} else if o.Channel == "" {
		o.Channel = "stable"
	}
	if o.Channel != "" {
		if err := repo.ValidateName("channel", o.Channel); err != nil {
			return usagef("--channel: %v", err)
		}
	}
	if o.ValidFor < 0 || o.ValidFor > repo.MaxBundleValidity {
		return usagef("--valid-for %s: want at most %s", o.ValidFor, repo.MaxBundleValidity)
	}
	if o.ValidFor != 0 && o.ValidFor < time.Hour {
		return usagef("--valid-for %s: want at least 1h", o.ValidFor)
	}
	return nil
}

// selectBundleReleases finds the releases the options name and every
// target path they need: artifact, its signature, channel pointer and,
// with Patches, its patches.
func selectBundleReleases(ctx context.Context, s Store, r *repo.Repo, o BundleOptions) ([]repo.BundleRelease, map[string]bool, error) {
	type cp struct{ component, platform string }
	var pairs []cp
	if o.AllComponents || o.Platform == "" {
		// Which components and platforms exist: from every target (this
		// reads every bin of a repository with hashed bins).
		all, err := r.AllTargets()
		if err != nil {
			return nil, nil, err
		}
		seen := map[cp]bool{}
		for p, tf := range all {
			c, pl, _, _, err := repo.ParseArtifactPath(p)
			if err != nil || tf.Custom == nil {
				continue
			}
			if (o.Platform != "" && pl != o.Platform) || (!o.AllComponents && !slices.Contains(o.Components, c)) {
				continue
			}
			seen[cp{c, pl}] = true
		}
		for k := range seen {
			pairs = append(pairs, k)
		}
		for _, c := range o.Components {
			if !slices.ContainsFunc(pairs, func(p cp) bool { return p.component == c }) {
				return nil, nil, usagef("--component %s: the repository publishes no release of %s%s (bcpublish release list shows what it has)", c, c, forPlatform(o.Platform))
			}
		}
		if len(pairs) == 0 {
			return nil, nil, usagef("the repository publishes no release%s", forPlatform(o.Platform))
		}
	} else {
		for _, c := range o.Components {
			pairs = append(pairs, cp{c, o.Platform})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].component != pairs[j].component {
			return pairs[i].component < pairs[j].component
		}
		return pairs[i].platform < pairs[j].platform
	})
	paths := map[string]bool{}
	var rels []repo.BundleRelease
	var missing []string
	for _, pr := range pairs {
		br := repo.BundleRelease{Component: pr.component, Platform: pr.platform, Channel: o.Channel}
		if o.Channel != "" {
			ptr, err := readPointer(ctx, s, r, pr.component, pr.platform, o.Channel)
			if errors.Is(err, repo.ErrVerification) || (err != nil && !errors.Is(err, errs.ErrUsage)) {
				return nil, nil, err
			}
			if err != nil {
				missing = append(missing, fmt.Sprintf("%s for %s", pr.component, pr.platform))
				continue
			}
			br.Path = ptr.Release
			paths[repo.ChannelPath(pr.component, pr.platform, o.Channel)] = true
		} else {
			ix, err := releaseIndex(ctx, s, r, pr.component, pr.platform)
			if err != nil {
				return nil, nil, err
			}
			p, ok := ix.Releases[o.Version]
			if !ok {
				missing = append(missing, fmt.Sprintf("%s %s for %s", pr.component, o.Version, pr.platform))
				continue
			}
			br.Path = p
		}
		tf, ok, err := r.Lookup(br.Path)
		if err != nil {
			return nil, nil, err
		}
		if !ok || tf.Custom == nil {
			return nil, nil, fmt.Errorf("%w: %s is named but not published as a release", repo.ErrVerification, br.Path)
		}
		rel, err := repo.ParseRelease(tf.Custom)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", repo.ErrVerification, br.Path, err)
		}
		if rel.Yanked {
			return nil, nil, usagef("%s %s for %s was withdrawn (%s): it is not bundled", rel.Component, rel.Version, rel.Platform, rel.YankReason)
		}
		br.Version = rel.Version
		paths[br.Path] = true
		if rel.Codesign == repo.CodesignCMS {
			paths[repo.SignaturePath(br.Path)] = true
		}
		if o.Patches {
			for _, d := range rel.Deltas {
				paths[d.Patch] = true
			}
		}
		rels = append(rels, br)
	}
	if len(missing) > 0 && (o.Platform != "" || len(rels) == 0) {
		what := "channel " + o.Channel + " names no release of "
		if o.Channel == "" {
			what = "the repository has no release "
		}
		return nil, nil, usagef("%s%s (bcpublish release list shows what it has)", what, strings.Join(missing, ", "))
	}
	return rels, paths, nil
}

func forPlatform(p string) string {
	if p == "" {
		return ""
	}
	return " for " + p
}

// writeBundle streams the entries into out.tmp, fsyncs it and renames it
// to out. Targets are copied from the store and checked against their
// signed length and sha256 on the way (a damaged repository makes no
// bundle). On error nothing is left.
func writeBundle(ctx context.Context, s Store, out string, entries []bundleEntry, mtime time.Time, total int64, progress func(done, total int64)) (size int64, err error) {
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return 0, usagef("--out %s is a directory: give a file name such as update%s", out, repo.BundleExt)
	}
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("--out %s: %w", out, fileErr(err))
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	cw := &countingWriter{w: &writebackWriter{f: f}, total: total, progress: progress}
	tw := tar.NewWriter(cw)
	buf := make([]byte, 1<<20)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		hdr := &tar.Header{Name: e.Name, Mode: 0o644, Size: e.Length, ModTime: mtime, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return 0, fmt.Errorf("write %s: %w", tmp, err)
		}
		if e.data != nil {
			if _, err := tw.Write(e.data); err != nil {
				return 0, fmt.Errorf("write %s: %w", tmp, err)
			}
			cw.note()
			continue
		}
		if err := copyTarget(ctx, s, tw, e, buf); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := atomicfile.Rename(tmp, out); err != nil {
		return 0, fmt.Errorf("--out %s: %w", out, err)
	}
	return cw.n, nil
}

// writebackWriter writes to f and, every writebackChunk bytes, has the
// kernel start writing the chunk just written back to disk, so that a
// large bundle's final fsync does not wait for all of it at once.
type writebackWriter struct {
	f        *os.File
	n, since int64
}

const writebackChunk = 8 << 20

func (w *writebackWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if w.n-w.since >= writebackChunk {
		startWriteback(w.f, w.since, w.n-w.since)
		w.since = w.n
	}
	return n, err
}

// copyTarget streams one target from the store into the tar, checking its
// length and sha256.
func copyTarget(ctx context.Context, s Store, w io.Writer, e bundleEntry, buf []byte) error {
	rc, err := s.Get(ctx, e.object)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s is listed in the metadata but missing from the repository", repo.ErrVerification, e.object)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", e.object, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, h), io.LimitReader(rc, e.Length+1), buf)
	if err != nil {
		return fmt.Errorf("copy %s: %w", e.object, err)
	}
	if n != e.Length || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return fmt.Errorf("%w: %s in the repository does not match its signed length and sha256 (the repository is damaged)", repo.ErrVerification, e.object)
	}
	return nil
}

// countingWriter counts bytes written and reports progress every MiB.
type countingWriter struct {
	w        io.Writer
	n        int64
	total    int64
	reported int64
	progress func(done, total int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.n-c.reported >= 1<<20 {
		c.note()
	}
	return n, err
}

func (c *countingWriter) note() {
	if c.progress != nil {
		c.reported = c.n
		c.progress(min(c.n, c.total), c.total)
	}
}
