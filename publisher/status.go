package publisher

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/repo"
)

// warnWithin is how close to expiry a role must be for status to warn.
func warnWithin(role string) time.Duration {
	switch role {
	case repo.RoleRoot:
		return 60 * 24 * time.Hour
	case repo.RoleTargets:
		return 14 * 24 * time.Hour
	case repo.RoleSnapshot:
		return 2 * 24 * time.Hour
	case repo.RoleTimestamp:
		return 6 * time.Hour
	}
	return 0
}

// RoleStatus is one role's version and expiry.
type RoleStatus struct {
	Role    string    `json:"role"`
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	Warning string    `json:"warning,omitempty"`
}

// RepoStatus is what `bcpublish status` reports.
type RepoStatus struct {
	Roles    []RoleStatus `json:"roles"`
	Targets  int          `json:"targets"`
	Bins     int          `json:"bins,omitempty"`
	Releases int          `json:"releases"`
	Warnings []string     `json:"warnings"`
}

// Status loads and verifies the repository and reports versions, expiries
// and a warning for every role expired or about to expire.
//
// window, if positive (0: the defaults, 60 and 14 days), replaces the
// warning window of root and targets (the roles a person re-signs);
// snapshot and timestamp, which a timer re-signs, warn when the timer has
// visibly stopped (2 days, 6 hours).
func Status(ctx context.Context, s Store, now time.Time, window time.Duration) (*RepoStatus, error) {
	return status(ctx, s, now, true, window)
}

// ExpiryWarnings is Status without counting targets (which, with bins,
// reads every bin): what `release add` and `refresh` warn about.
func ExpiryWarnings(ctx context.Context, s Store, now time.Time, window time.Duration) ([]string, error) {
	st, err := status(ctx, s, now, false, window)
	if err != nil {
		return nil, err
	}
	return st.Warnings, nil
}

func status(ctx context.Context, s Store, now time.Time, count bool, window time.Duration) (*RepoStatus, error) {
	r, err := loadRepo(ctx, s)
	if err != nil {
		return nil, err
	}
	return statusOf(r, now, count, window)
}

// expiryWarnings are ExpiryWarnings for a repository already in memory
// (just committed).
func expiryWarnings(r *repo.Repo, now time.Time, window time.Duration) []string {
	st, err := statusOf(r, now, false, window)
	if err != nil {
		return nil
	}
	return st.Warnings
}

func statusOf(r *repo.Repo, now time.Time, count bool, window time.Duration) (*RepoStatus, error) {
	st := &RepoStatus{Bins: r.Bins(), Warnings: []string{}}
	if count {
		all, err := r.AllTargets()
		if err != nil {
			return nil, err
		}
		st.Targets = len(all)
		for _, tf := range all {
			if tf.Custom != nil {
				st.Releases++
			}
		}
	}
	fix := map[string]string{
		repo.RoleRoot:      "bcpublish root rotate --extend",
		repo.RoleTargets:   "bcpublish refresh --targets",
		repo.RoleSnapshot:  "bcpublish refresh",
		repo.RoleTimestamp: "bcpublish refresh",
	}
	add := func(role string, version int64, expires time.Time) {
		rs := RoleStatus{Role: role, Version: version, Expires: expires.UTC()}
		within := warnWithin(role)
		if window > 0 && (role == repo.RoleRoot || role == repo.RoleTargets) {
			within = window
		}
		switch left := expires.Sub(now); {
		case left <= 0:
			rs.Warning = fmt.Sprintf("%s v%d expired at %s: agents refuse this repository until it is re-signed (%s)", role, version, rs.Expires.Format(time.RFC3339), fix[role])
		case left < within:
			rs.Warning = fmt.Sprintf("%s v%d expires in %s, at %s (%s)", role, version, humanDuration(left), rs.Expires.Format(time.RFC3339), fix[role])
		}
		if rs.Warning != "" {
			st.Warnings = append(st.Warnings, rs.Warning)
		}
		st.Roles = append(st.Roles, rs)
	}
	add(repo.RoleRoot, r.Root.Signed.Version, r.Root.Signed.Expires)
	add(repo.RoleTargets, r.Targets.Signed.Version, r.Targets.Signed.Expires)
	add(repo.RoleSnapshot, r.Snapshot.Signed.Version, r.Snapshot.Signed.Expires)
	add(repo.RoleTimestamp, r.Timestamp.Signed.Version, r.Timestamp.Signed.Expires)
	return st, nil
}

func humanDuration(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	return d.Round(time.Minute).String()
}

// ParseWindow parses a duration that may use days, such as 14d or 36h.
func ParseWindow(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, usagef("%q: want a duration such as 14d or 36h", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, usagef("%q: want a duration such as 14d or 36h", s)
	}
	return d, nil
}

// Refresh re-signs snapshot and timestamp so they do not expire; with
// targets it re-signs targets and every bin too (its 90 days run out on a
// quiet repository), and repairs a repository an older bcpublish left
// half-rotated (repo.LoadStaleTargets: a new targets key in the root, the
// targets metadata still signed with the old one).
func Refresh(ctx context.Context, s Store, keys repo.Keys, now time.Time, targets bool) (*repo.Repo, error) {
	load := repo.Load
	if targets {
		load = repo.LoadStaleTargets
	}
	r, err := loadWith(ctx, s, load)
	if err != nil {
		return nil, err
	}
	r.Taken = func(file string) (bool, error) { return s.Exists(ctx, "metadata/"+file) }
	var files []repo.File
	if targets {
		if err := r.MarkAllDirty(); err != nil {
			return nil, err
		}
		files, err = r.Commit(keys, now)
	} else {
		files, err = r.Refresh(keys, now)
	}
	if err != nil {
		return nil, err
	}
	if err := writeMetadata(ctx, s, r, files); err != nil {
		return nil, err
	}
	return r, nil
}
