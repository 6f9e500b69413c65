package repo

import (
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// RootEdit changes one role in a staged root.
type RootEdit struct {
	Role      string
	Add       []*metadata.Key
	Remove    []string // key ids
	Threshold int      // 0: unchanged
}

// NextRoot returns an unsigned copy of the current root as version N+1,
// expiring RootExpiry from now.
func (r *Repo) NextRoot(now time.Time) (*metadata.Metadata[metadata.RootType], error) {
	b, err := r.Root.ToBytes(false)
	if err != nil {
		return nil, err
	}
	next, err := metadata.Root().FromBytes(b)
	if err != nil {
		return nil, err
	}
	next.Signed.Version++
	next.Signed.Expires = expiry(RoleRoot, now)
	next.ClearSignatures()
	return next, nil
}

// EditRoot applies an edit to a staged root and checks that every role can
// still reach its threshold. It clears the signatures: they covered the
// old content.
func EditRoot(root *metadata.Metadata[metadata.RootType], e RootEdit) error {
	role, ok := root.Signed.Roles[e.Role]
	if !ok {
		return fmt.Errorf("role %q: want root, targets, snapshot or timestamp", e.Role)
	}
	for _, k := range e.Add {
		if err := root.Signed.AddKey(k, e.Role); err != nil {
			return fmt.Errorf("add key to %s: %w", e.Role, err)
		}
	}
	for _, id := range e.Remove {
		if !slices.Contains(role.KeyIDs, id) {
			var ids []string
			for _, k := range role.KeyIDs {
				ids = append(ids, short(k))
			}
			return fmt.Errorf("key %s is not one of the root's %s keys (%s)", short(id), e.Role, strings.Join(ids, ", "))
		}
		if err := root.Signed.RevokeKey(id, e.Role); err != nil {
			return fmt.Errorf("remove key from %s: %w", e.Role, err)
		}
	}
	role = root.Signed.Roles[e.Role]
	if e.Threshold > 0 {
		role.Threshold = e.Threshold
	}
	for name, r := range root.Signed.Roles {
		if r.Threshold < 1 || r.Threshold > len(r.KeyIDs) {
			return fmt.Errorf("role %s would need %d signatures from %d keys; give a threshold from 1 to the number of keys, adding keys with --add-key first", name, r.Threshold, len(r.KeyIDs))
		}
	}
	root.ClearSignatures()
	return nil
}

// SignRoot adds s's signature to a staged root, replacing an earlier one
// by the same key.
func SignRoot(root *metadata.Metadata[metadata.RootType], s signature.Signer) (string, error) {
	_, id, err := tufKey(s)
	if err != nil {
		return "", err
	}
	root.Signatures = slices.DeleteFunc(root.Signatures, func(sig metadata.Signature) bool { return sig.KeyID == id })
	if _, err := root.Sign(s); err != nil {
		return "", err
	}
	return id, nil
}

// KeyID returns a public key's TUF key id.
func KeyID(k *metadata.Key) (string, error) { return k.ID() }

// signedBy lists the key ids of delegator's role whose signature on md
// verifies.
func signedBy[T metadata.Roles](delegator *metadata.Metadata[metadata.RootType], role string, md *metadata.Metadata[T]) []string {
	var ok []string
	for _, id := range delegator.Signed.Roles[role].KeyIDs {
		one := *delegator
		signed := one.Signed
		signed.Roles = map[string]*metadata.Role{}
		for n, r := range delegator.Signed.Roles {
			signed.Roles[n] = r
		}
		signed.Roles[role] = &metadata.Role{KeyIDs: []string{id}, Threshold: 1}
		one.Signed = signed
		if one.VerifyDelegate(role, md) == nil {
			ok = append(ok, id)
		}
	}
	return ok
}

// unsigned is the verification error of md (the file name) not signed by
// enough of root's keys for role, in counts instead of go-tuf's words
// (its error is wrapped).
func unsigned[T metadata.Roles](root *metadata.Metadata[metadata.RootType], role, name string, md *metadata.Metadata[T], err error) error {
	rr := root.Signed.Roles[role]
	if rr == nil {
		return fmt.Errorf("%w: %s: %w", ErrVerification, name, err)
	}
	have := len(signedBy(root, role, md))
	if have >= rr.Threshold {
		return fmt.Errorf("%w: %s: %v", ErrVerification, name, err)
	}
	return &explained{
		msg: fmt.Sprintf("%v: %s has %d valid signatures by the %s keys of root v%d, which needs %d (it was changed, or signed with keys that root does not list)",
			ErrVerification, name, have, role, root.Signed.Version, rr.Threshold),
		errs: []error{ErrVerification, err},
	}
}

// explained is an error in our words (msg) that wraps the errors it
// explains, such as go-tuf's, without repeating their text.
type explained struct {
	msg  string
	errs []error
}

func (e *explained) Error() string   { return e.msg }
func (e *explained) Unwrap() []error { return e.errs }

// checkNextRoot says whether next may follow prev: version prev+1, signed by
// prev's root threshold and by its own. The error names what is missing.
func checkNextRoot(prev, next *metadata.Metadata[metadata.RootType]) error {
	if next.Signed.Version != prev.Signed.Version+1 {
		return fmt.Errorf("staged root is version %d; the repository's root is version %d, so the next must be %d",
			next.Signed.Version, prev.Signed.Version, prev.Signed.Version+1)
	}
	var missing []string
	for _, c := range []struct {
		name string
		by   *metadata.Metadata[metadata.RootType]
	}{{fmt.Sprintf("the current root (v%d)", prev.Signed.Version), prev}, {fmt.Sprintf("the new root (v%d) itself", next.Signed.Version), next}} {
		role := c.by.Signed.Roles[RoleRoot]
		have := signedBy(c.by, RoleRoot, next)
		if len(have) >= role.Threshold {
			continue
		}
		var lacking []string
		for _, id := range role.KeyIDs {
			if !slices.Contains(have, id) {
				lacking = append(lacking, short(id))
			}
		}
		sort.Strings(lacking)
		missing = append(missing, fmt.Sprintf("%d of %d signatures required by %s (%d more from keys %s)",
			len(have), role.Threshold, c.name, role.Threshold-len(have), strings.Join(lacking, ", ")))
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: staged root has %s; sign it with bcpublish root sign --key KEY", ErrVerification, strings.Join(missing, "; and "))
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// changedRoles lists the non-root roles whose keys or threshold differ.
func changedRoles(prev, next *metadata.Metadata[metadata.RootType]) []string {
	var out []string
	for _, role := range []string{RoleTargets, RoleSnapshot, RoleTimestamp} {
		a, b := prev.Signed.Roles[role], next.Signed.Roles[role]
		ka, kb := slices.Clone(a.KeyIDs), slices.Clone(b.KeyIDs)
		sort.Strings(ka)
		sort.Strings(kb)
		if a.Threshold != b.Threshold || !slices.Equal(ka, kb) {
			out = append(out, role)
		}
	}
	return out
}

// PublishRoot makes next the repository's root and, when the targets,
// snapshot or timestamp keys changed, re-signs what they sign with keys:
// new targets keys re-sign targets.json and, in a repository with hashed
// bins, every bin (the delegation to the bins follows the targets role);
// then snapshot and timestamp.
// It returns the files to write, in order: the versioned metadata first,
// then N.root.json, then timestamp.json.
func (r *Repo) PublishRoot(next *metadata.Metadata[metadata.RootType], keys Keys, now time.Time) ([]File, error) {
	if err := checkNextRoot(r.Root, next); err != nil {
		return nil, err
	}
	changed := changedRoles(r.Root, next)
	rootBytes, err := next.ToBytes(true)
	if err != nil {
		return nil, err
	}
	var files []File
	if slices.Contains(changed, RoleTargets) {
		// Load every bin while the old delegation still verifies it.
		if err := r.MarkAllDirty(); err != nil {
			return nil, err
		}
	}
	r.Root = next
	rootFile := File{Name: fmt.Sprintf("%d.root.json", next.Signed.Version), Data: rootBytes}
	switch {
	case slices.Contains(changed, RoleTargets):
		r.rekeyBins()
		r.topDirty = true
		files, err = r.Commit(keys, now)
	case len(changed) > 0:
		files, err = r.Refresh(keys, now)
	default:
		return []File{rootFile}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the new root changes the %s keys, so their metadata must be re-signed with the new keys (give them with --keys): %w", strings.Join(changed, ", "), err)
	}
	// Versioned files, then the root, then timestamp.json (the last file).
	out := append([]File{}, files[:len(files)-1]...)
	out = append(out, rootFile, files[len(files)-1])
	return out, nil
}

// rekeyBins makes targets.json's delegation to the hashed bins follow the
// root's targets role: the bins are signed with the targets keys (NewBins),
// so when a root changes those keys or their threshold, the delegation
// lists the new keys and threshold, and every bin must be re-signed with
// them (the caller marks them all dirty). Without it a targets rotation
// would leave targets.json and the bins signed by a key the root no longer
// lists, and every client would refuse the repository.
func (r *Repo) rekeyBins() {
	sr := r.succinct()
	if sr == nil {
		return
	}
	role := r.Root.Signed.Roles[RoleTargets]
	keys := make(map[string]*metadata.Key, len(role.KeyIDs))
	for _, id := range role.KeyIDs {
		keys[id] = r.Root.Signed.Keys[id]
	}
	r.Targets.Signed.Delegations.Keys = keys
	sr.KeyIDs = slices.Clone(role.KeyIDs)
	sort.Strings(sr.KeyIDs)
	sr.Threshold = role.Threshold
}

// KeyIDFromHex accepts a key id as given on the command line.
func KeyIDFromHex(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return "", fmt.Errorf("%q is not a key id (64 hex digits) or a public key file", s)
	}
	return s, nil
}
