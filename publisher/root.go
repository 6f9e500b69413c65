package publisher

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/internal/regfile"
	"github.com/beckmanconnect/bcupdate/repo"
)

// RootChange is what `root stage` and `root rotate` change in one role.
type RootChange struct {
	// Extend only re-issues the root with a new expiry (Role may be empty).
	Extend    bool
	Role      string
	Add       []string // public keys: files or KMS URIs
	Remove    []string // public key files or key ids
	Threshold int
}

func (rc RootChange) edit(ctx context.Context) (repo.RootEdit, error) {
	e := repo.RootEdit{Role: rc.Role, Threshold: rc.Threshold}
	for _, ref := range rc.Add {
		k, err := LoadPublicKeyRef(ctx, ref)
		if err != nil {
			return e, usagef("--add-key: %v", err)
		}
		e.Add = append(e.Add, k)
	}
	for _, ref := range rc.Remove {
		if id, err := repo.KeyIDFromHex(ref); err == nil {
			e.Remove = append(e.Remove, id)
			continue
		}
		k, err := LoadPublicKeyRef(ctx, ref)
		if err != nil {
			return e, usagef("--remove-key: %v", err)
		}
		id, err := repo.KeyID(k)
		if err != nil {
			return e, err
		}
		e.Remove = append(e.Remove, id)
	}
	return e, nil
}

// readRootFile reads a staged root.
func readRootFile(file string) (*metadata.Metadata[metadata.RootType], error) {
	data, err := regfile.Read(file, repo.MaxRootSize)
	if err != nil {
		return nil, usagef("%w", err)
	}
	md, err := metadata.Root().FromBytes(data)
	if err != nil {
		return nil, usagef("%s is not a TUF root (a file bcpublish root stage wrote): %w", file, err)
	}
	return md, nil
}

func writeRootFile(file string, md *metadata.Metadata[metadata.RootType]) error {
	b, err := md.ToBytes(true)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(file, b, 0o644)
}

// StageRoot writes the unsigned next root with the change applied: from
// the repository's current root, or from an earlier staged file (to change
// several roles in one rotation).
func StageRoot(ctx context.Context, s Store, from string, change RootChange, out string, now time.Time) (*metadata.Metadata[metadata.RootType], error) {
	r, err := loadRepo(ctx, s)
	if err != nil {
		return nil, err
	}
	var next *metadata.Metadata[metadata.RootType]
	if from != "" {
		if next, err = readRootFile(from); err != nil {
			return nil, err
		}
		if next.Signed.Version != r.Root.Signed.Version+1 {
			return nil, usagef("--from %s is version %d; the next root is %d", from, next.Signed.Version, r.Root.Signed.Version+1)
		}
	} else if next, err = r.NextRoot(now); err != nil {
		return nil, err
	}
	if !change.Extend || change.Role != "" {
		e, err := change.edit(ctx)
		if err != nil {
			return nil, err
		}
		if err := repo.EditRoot(next, e); err != nil {
			return nil, usagef("%w", err)
		}
	}
	next.Signed.Expires = now.UTC().Add(repo.RootExpiry).Truncate(time.Second)
	if out == "" {
		return nil, usagef("--out FILE is required")
	}
	return next, writeRootFile(out, next)
}

// SignRootFile adds one signature to a staged root file. It needs no
// repository: a root key holder signs on their own machine.
func SignRootFile(file string, s signature.Signer) (string, int, error) {
	md, err := readRootFile(file)
	if err != nil {
		return "", 0, err
	}
	// A key the staged root lists for another role only is a mistake; a
	// key it does not list may be a current root key being rotated out.
	roles, _, err := repo.KeyRoles(md, s)
	if err != nil {
		return "", 0, err
	}
	if len(roles) > 0 && !slices.Contains(roles, repo.RoleRoot) {
		return "", 0, fmt.Errorf("%w: the key given is the staged root's %s key, not one of its root keys; sign with a root key", repo.ErrWrongKey, roles[0])
	}
	id, err := repo.SignRoot(md, s)
	if err != nil {
		return "", 0, err
	}
	return id, len(md.Signatures), writeRootFile(file, md)
}

// PublishRoot publishes a staged, signed root as the next N.root.json once
// it carries the current root's threshold of root signatures and its own;
// if it changes the targets, snapshot or timestamp keys, keys (the new ones)
// re-sign what those roles sign.
func PublishRoot(ctx context.Context, s Store, file string, keys repo.Keys, now time.Time) (*metadata.Metadata[metadata.RootType], error) {
	next, err := readRootFile(file)
	if err != nil {
		return nil, err
	}
	r, err := loadForWrite(ctx, s)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("metadata/%d.root.json", next.Signed.Version)
	if ok, err := s.Exists(ctx, name); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("%w: %s is already published", repo.ErrConflict, name)
	}
	files, err := r.PublishRoot(next, keys, now)
	if err != nil {
		return nil, err
	}
	return next, writeMetadata(ctx, s, r, files)
}

// RotateRoot stages, signs and publishes in one step when the keys are at
// hand: rootSigners sign the new root (enough for the old root's threshold
// and the new one's), keys re-sign the roles that changed.
func RotateRoot(ctx context.Context, s Store, change RootChange, rootSigners []signature.Signer, keys repo.Keys, now time.Time) (*metadata.Metadata[metadata.RootType], error) {
	r, err := loadRepo(ctx, s)
	if err != nil {
		return nil, err
	}
	if err := r.CheckKeys(repo.RoleRoot, rootSigners); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp("", "bcupdate-root-*.json")
	if err != nil {
		return nil, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if _, err := StageRoot(ctx, s, "", change, tmp.Name(), now); err != nil {
		return nil, err
	}
	for _, rs := range rootSigners {
		if _, _, err := SignRootFile(tmp.Name(), rs); err != nil {
			return nil, err
		}
	}
	return PublishRoot(ctx, s, tmp.Name(), keys, now)
}
