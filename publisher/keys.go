package publisher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// GenerateKeys writes a new key pair for every top-level role into dir
// (0700): <role>.key (PKCS#8 PEM, 0600) and <role>.pub. It refuses to
// overwrite any existing key.
func GenerateKeys(dir, keyType string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--out %s: %w", dir, err)
	}
	for _, role := range repo.TopLevelRoles {
		if _, err := os.Lstat(filepath.Join(dir, role+".key")); err == nil {
			return nil, fmt.Errorf("--out %s: %s.key already exists; refusing to overwrite keys", dir, role)
		}
	}
	var written []string
	for _, role := range repo.TopLevelRoles {
		k, err := signer.GenerateKey(keyType)
		if err != nil {
			return nil, fmt.Errorf("--type: %w", err)
		}
		priv, pub := filepath.Join(dir, role+".key"), filepath.Join(dir, role+".pub")
		if err := signer.WriteKeyPair(priv, pub, k); err != nil {
			return nil, err
		}
		written = append(written, priv, pub)
	}
	return written, nil
}

// LoadKeys loads <dir>/<role>.key for each role asked for.
func LoadKeys(dir string, roles ...string) (repo.Keys, error) {
	if dir == "" {
		return nil, errors.New("--keys is required")
	}
	keys := repo.Keys{}
	for _, role := range roles {
		p := filepath.Join(dir, role+".key")
		s, err := signer.LoadRoleSigner(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("--keys %s: no %s.key (make keys with bcpublish keys generate)", dir, role)
		}
		if err != nil {
			return nil, fileErr(err)
		}
		keys[role] = []signature.Signer{s}
	}
	return keys, nil
}
