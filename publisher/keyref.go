package publisher

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws" // awskms://
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/beckmanconnect/bcupdate/internal/regfile"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// isKMS says whether a key reference names a KMS key (awskms://…, or any
// provider registered with sigstore's kms package).
func isKMS(ref string) bool {
	i := strings.Index(ref, "://")
	return i > 0 && ref[:i] != "file"
}

// LoadSignerRef loads a role key by reference: a file path, file://path,
// or a sigstore KMS URI such as awskms:///arn:aws:kms:…, so production keys
// never sit on a release engineer's disk.
func LoadSignerRef(ctx context.Context, ref string) (signature.Signer, error) {
	switch {
	case strings.HasPrefix(ref, "file://"):
		return signer.LoadRoleSigner(strings.TrimPrefix(ref, "file://"))
	case isKMS(ref):
		sv, err := kms.Get(ctx, ref, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", ref, err)
		}
		return sv, nil
	default:
		return signer.LoadRoleSigner(ref)
	}
}

// LoadPublicKeyRef loads a TUF public key from a PEM file (public or
// private key) or a KMS URI.
func LoadPublicKeyRef(ctx context.Context, ref string) (*metadata.Key, error) {
	var pub crypto.PublicKey
	if isKMS(ref) {
		s, err := LoadSignerRef(ctx, ref)
		if err != nil {
			return nil, err
		}
		if pub, err = s.PublicKey(); err != nil {
			return nil, fmt.Errorf("key %s: %w", ref, err)
		}
	} else {
		path := strings.TrimPrefix(ref, "file://")
		data, err := regfile.Read(path, maxPublicKeyFile)
		if err != nil {
			return nil, usagef("key %w", err)
		}
		if pub, err = cryptoutils.UnmarshalPEMToPublicKey(data); err != nil {
			priv, perr := signer.ParsePrivateKey(data, path)
			if perr != nil {
				return nil, usage(quiet(fmt.Errorf("key %s holds no PEM public or private key; give a .pub file such as bcpublish keys generate writes, or a KMS URI", ref), errors.Join(err, perr)))
			}
			pub = priv.Public()
		}
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", ref, err)
	}
	return k, nil
}

// maxPublicKeyFile bounds a public (or private) key file read for its
// public key.
const maxPublicKeyFile = 64 << 10

// KeyRefs are per-role key references that take precedence over --keys DIR.
type KeyRefs map[string][]string

// LoadKeysRefs loads the keys of roles: each role's references if given,
// else DIR/<role>.key.
func LoadKeysRefs(ctx context.Context, dir string, refs KeyRefs, roles ...string) (repo.Keys, error) {
	keys := repo.Keys{}
	var fromDir []string
	for _, role := range roles {
		if len(refs[role]) == 0 {
			fromDir = append(fromDir, role)
			continue
		}
		for _, ref := range refs[role] {
			s, err := LoadSignerRef(ctx, ref)
			if err != nil {
				return nil, fileErr(fmt.Errorf("--%s-key: %w", role, err))
			}
			keys[role] = append(keys[role], s)
		}
	}
	if len(fromDir) > 0 {
		if dir == "" {
			return nil, errors.New("--keys DIR (or --" + fromDir[0] + "-key) is required")
		}
		d, err := LoadKeys(dir, fromDir...)
		if err != nil {
			return nil, err
		}
		for r, k := range d {
			keys[r] = k
		}
	}
	return keys, nil
}
