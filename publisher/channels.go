package publisher

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/repo"
)

func validPercent(p int) error {
	if p < 0 || p > 100 {
		return usagef("--percent %d: want 1 to 100", p)
	}
	return nil
}

// pointerTarget makes a channel pointer target (percent 100 or 0: everyone).
func pointerTarget(component, platform, channel, release string, percent int) (repo.Target, []byte, error) {
	if percent >= 100 {
		percent = 0
	}
	b, err := json.Marshal(repo.Pointer{Release: release, Percent: percent})
	if err != nil {
		return repo.Target{}, nil, err
	}
	b = append(b, '\n')
	return repo.NewTarget(repo.ChannelPath(component, platform, channel), b, nil), b, nil
}

// readPointer reads a channel pointer from the repository.
func readPointer(ctx context.Context, s Store, r *repo.Repo, component, platform, channel string) (*repo.Pointer, error) {
	p := repo.ChannelPath(component, platform, channel)
	tf, ok, err := r.Lookup(p)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, usagef("channel %s has no release for %s %s", channel, component, platform)
	}
	data, err := readAll(ctx, s, "targets/"+repo.ConsistentName(p, hex.EncodeToString(tf.Hashes["sha256"])), repo.MaxPointerSize)
	if err != nil {
		return nil, err
	}
	if err := tf.VerifyLengthHashes(data); err != nil {
		return nil, fmt.Errorf("%w: %s does not match its metadata", repo.ErrVerification, p)
	}
	return repo.ParsePointer(data)
}

// releaseIndex reads the release index of a component and platform. A
// repository without one yet gets one: for a flat repository, made from
// the releases it lists; with bins (which cannot be listed cheaply), empty.
func releaseIndex(ctx context.Context, s Store, r *repo.Repo, component, platform string) (*repo.ReleaseIndex, error) {
	p := repo.ReleasesPath(component, platform)
	tf, ok, err := r.Lookup(p)
	if err != nil {
		return nil, err
	}
	if ok {
		data, err := readAll(ctx, s, "targets/"+repo.ConsistentName(p, hex.EncodeToString(tf.Hashes["sha256"])), repo.MaxReleaseIndexSize)
		if err != nil {
			return nil, err
		}
		if err := tf.VerifyLengthHashes(data); err != nil {
			return nil, fmt.Errorf("%w: %s does not match its metadata", repo.ErrVerification, p)
		}
		return repo.ParseReleaseIndex(data, component, platform)
	}
	ix := &repo.ReleaseIndex{Releases: map[string]string{}}
	if r.Bins() == 0 {
		for tp, tf := range r.Targets.Signed.Targets {
			c, pl, v, _, err := repo.ParseArtifactPath(tp)
			if err == nil && tf.Custom != nil && c == component && pl == platform {
				ix.Releases[v] = tp
			}
		}
	}
	return ix, nil
}

// commitTargets commits r and writes the new targets' bytes then the metadata.
func commitTargets(ctx context.Context, s Store, r *repo.Repo, keys repo.Keys, now time.Time, blobs map[repo.Target][]byte) error {
	files, err := r.Commit(keys, now)
	if err != nil {
		return err
	}
	for t, b := range blobs {
		if err := putBytesIfAbsent(ctx, s, "targets/"+t.StorageName(), b); err != nil {
			return err
		}
	}
	return writeMetadata(ctx, s, r, files)
}

// Promote points channel `to` at the release channel `from` names, for
// percent of devices (100: all). Promoting a channel to itself changes its
// rollout share.
func Promote(ctx context.Context, s Store, keys repo.Keys, component, platform, from, to string, percent int, now time.Time) (string, error) {
	return PromoteGuarded(ctx, s, keys, component, platform, from, to, percent, now, nil)
}

// PromoteGuarded is Promote with a guard: it is called with the version
// the source channel names before anything is written, and its error
// refuses the promotion (RolloutGuard asks the fleet service). Only a
// widening is guarded: narrowing the share of a release the target
// channel already names (the way out of a failing rollout) never is.
func PromoteGuarded(ctx context.Context, s Store, keys repo.Keys, component, platform, from, to string, percent int, now time.Time, guard func(version string) error) (string, error) {
	for _, c := range []string{from, to} {
		if err := repo.ValidateName("channel", c); err != nil {
			return "", usagef("%v", err)
		}
	}
	if err := validPercent(percent); err != nil {
		return "", err
	}
	r, err := loadForWrite(ctx, s)
	if err != nil {
		return "", err
	}
	ptr, err := readPointer(ctx, s, r, component, platform, from)
	if err != nil {
		return "", err
	}
	if guard != nil && widens(ctx, s, r, component, platform, to, ptr.Release, percent) {
		if err := guard(releaseVersion(ptr.Release)); err != nil {
			return "", err
		}
	}
	t, b, err := pointerTarget(component, platform, to, ptr.Release, percent)
	if err != nil {
		return "", err
	}
	if err := r.Set(t); err != nil {
		return "", err
	}
	return ptr.Release, commitTargets(ctx, s, r, keys, now, map[repo.Target][]byte{t: b})
}

// widens says whether pointing channel to at release for percent of
// devices (0 or 100: all) gives the release to more devices than channel
// to gives it now.
func widens(ctx context.Context, s Store, r *repo.Repo, component, platform, to, release string, percent int) bool {
	cur, err := readPointer(ctx, s, r, component, platform, to)
	if err != nil || cur.Release != release {
		return true
	}
	share := func(p int) int {
		if p <= 0 || p >= 100 {
			return 100
		}
		return p
	}
	return share(percent) > share(cur.Percent)
}

// YankResult says what Yank did.
type YankResult struct {
	Release string
	// Moved maps each channel that named the release to what it names now
	// ("" when no older release was left and the channel was removed).
	Moved map[string]string
}

// Yank withdraws a release: it is marked yanked in its metadata (agents
// never install it and warn where it is installed), and every channel that
// named it is moved back to the newest older release that is not yanked.
func Yank(ctx context.Context, s Store, keys repo.Keys, component, platform, version, reason string, now time.Time) (*YankResult, error) {
	if _, err := repo.ParseVersion(version); err != nil {
		return nil, usagef("--version %w", err)
	}
	r, err := loadForWrite(ctx, s)
	if err != nil {
		return nil, err
	}
	type rel struct {
		path string
		meta *repo.Release
	}
	var target *rel
	var older []rel
	all, err := r.AllTargets()
	if err != nil {
		return nil, err
	}
	for p, tf := range all {
		if tf.Custom == nil || !strings.HasPrefix(p, component+"/"+platform+"/") {
			continue
		}
		m, err := repo.ParseRelease(tf.Custom)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", p, err)
		}
		switch c := repo.CompareVersions(m.Version, version); {
		case c == 0:
			target = &rel{p, m}
		case c < 0 && !m.Yanked:
			older = append(older, rel{p, m})
		}
	}
	if target == nil {
		return nil, usagef("%s %s for %s is not published", component, version, platform)
	}
	sort.Slice(older, func(i, j int) bool { return repo.CompareVersions(older[i].meta.Version, older[j].meta.Version) > 0 })
	target.meta.Yanked, target.meta.YankReason = true, reason
	custom, err := target.meta.Custom()
	if err != nil {
		return nil, err
	}
	if err := r.SetCustom(target.path, custom); err != nil {
		return nil, err
	}
	res := &YankResult{Release: target.path, Moved: map[string]string{}}
	blobs := map[repo.Target][]byte{}
	prefix := component + "/" + platform + "/channels/"
	for p := range all {
		if !strings.HasPrefix(p, prefix) || !strings.HasSuffix(p, ".json") {
			continue
		}
		channel := strings.TrimSuffix(strings.TrimPrefix(p, prefix), ".json")
		ptr, err := readPointer(ctx, s, r, component, platform, channel)
		if err != nil {
			return nil, err
		}
		if ptr.Release != target.path {
			continue
		}
		if len(older) == 0 {
			if err := r.Remove(p); err != nil {
				return nil, err
			}
			res.Moved[channel] = ""
			continue
		}
		t, b, err := pointerTarget(component, platform, channel, older[0].path, 100)
		if err != nil {
			return nil, err
		}
		if err := r.Set(t); err != nil {
			return nil, err
		}
		blobs[t] = b
		res.Moved[channel] = older[0].path
	}
	return res, commitTargets(ctx, s, r, keys, now, blobs)
}

// releaseVersion is the version in a release's target path
// (component/platform/version/file).
func releaseVersion(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) >= 4 {
		return parts[2]
	}
	return ""
}
