package publisher

import (
	"context"
	"fmt"
	"time"

	"github.com/beckmanconnect/bcupdate/repo"
)

// WarnWithin is how close to expiry a role must be for status to warn.
var WarnWithin = map[string]time.Duration{
	repo.RoleRoot:      60 * 24 * time.Hour,
	repo.RoleTargets:   14 * 24 * time.Hour,
	repo.RoleSnapshot:  2 * 24 * time.Hour,
	repo.RoleTimestamp: 6 * time.Hour,
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
	Releases int          `json:"releases"`
	Warnings []string     `json:"warnings"`
}

// Status loads and verifies the repository and reports versions, expiries
// and a warning for every role expired or about to expire.
func Status(ctx context.Context, s Store, now time.Time) (*RepoStatus, error) {
	r, err := loadRepo(ctx, s)
	if err != nil {
		return nil, err
	}
	st := &RepoStatus{Targets: len(r.Targets.Signed.Targets), Warnings: []string{}}
	for _, tf := range r.Targets.Signed.Targets {
		if tf.Custom != nil {
			st.Releases++
		}
	}
	add := func(role string, version int64, expires time.Time) {
		rs := RoleStatus{Role: role, Version: version, Expires: expires.UTC()}
		switch left := expires.Sub(now); {
		case left <= 0:
			rs.Warning = fmt.Sprintf("%s expired at %s: agents refuse this repository until it is re-signed (bcpublish refresh)", role, rs.Expires.Format(time.RFC3339))
		case left < WarnWithin[role]:
			rs.Warning = fmt.Sprintf("%s expires in %s, at %s", role, left.Round(time.Minute), rs.Expires.Format(time.RFC3339))
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

// Refresh re-signs snapshot and timestamp so they do not expire.
func Refresh(ctx context.Context, s Store, keys repo.Keys, now time.Time) (*repo.Repo, error) {
	r, err := loadRepo(ctx, s)
	if err != nil {
		return nil, err
	}
	files, err := r.Refresh(keys, now)
	if err != nil {
		return nil, err
	}
	if err := writeMetadata(ctx, s, files); err != nil {
		return nil, err
	}
	return r, nil
}
