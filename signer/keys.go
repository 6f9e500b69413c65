package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/internal/regfile"
)

// Key types accepted by GenerateKey.
const (
	KeyTypeEd25519   = "ed25519"
	KeyTypeECDSAP256 = "ecdsa-p256"
)

// maxKeyFileSize bounds what LoadSigner reads from a key file.
const maxKeyFileSize = 64 << 10

// GenerateKey makes a new private key of the given type.
func GenerateKey(keyType string) (crypto.Signer, error) {
	switch keyType {
	case KeyTypeEd25519, "":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case KeyTypeECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("unknown key type %q (want %s or %s)", keyType, KeyTypeEd25519, KeyTypeECDSAP256)
	}
}

// WriteKeyPair writes priv as PKCS#8 PEM to privPath (0600) and its public
// key as PKIX PEM to pubPath (0644). It refuses to overwrite an existing
// private key.
func WriteKeyPair(privPath, pubPath string, priv crypto.Signer) error {
	if _, err := os.Lstat(privPath); err == nil {
		return fmt.Errorf("%s already exists; refusing to overwrite a key", privPath)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("encode %s: %w", privPath, err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return fmt.Errorf("encode %s: %w", pubPath, err)
	}
	if err := atomicfile.WriteFile(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)
}

// LoadPrivateKey reads a PKCS#8 PEM private key (ed25519, ECDSA P-256 or RSA).
// A key file readable by group or others is refused, and so is anything
// but a regular file (checked, with the size, before a byte is read).
func LoadPrivateKey(path string) (crypto.Signer, error) {
	f, fi, err := regfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key %w", err)
	}
	defer f.Close()
	if fi.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("key %w", regfile.TooLarge(path, fi.Size(), maxKeyFileSize))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("key %w", regfile.TooLarge(path, int64(len(data)), maxKeyFileSize))
	}
	// What the file holds is said first (a .pub given for a key is not
	// fixed by a chmod); a private key others can read is never used.
	key, err := ParsePrivateKey(data, path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key %s: permissions %o are too open for a private key; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return key, nil
}

// ParsePrivateKey parses the first PKCS#8 (or SEC1 EC) private key in PEM data.
// name is used in error messages.
func ParsePrivateKey(data []byte, name string) (crypto.Signer, error) {
	var seen []string
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, noPrivateKey(name, seen)
		}
		seen = append(seen, block.Type)
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("key %s: encrypted keys are not supported; use a KMS or an unencrypted key on an offline machine", name)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key %s: its %s is not a valid key: %w", name, block.Type, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key %s: unsupported key type %T", name, key)
		}
		return s, nil
	}
}

// noPrivateKey is the error of a key file without a private key, saying
// what it holds instead (the PEM block types seen).
func noPrivateKey(name string, seen []string) error {
	switch {
	case slices.Contains(seen, "CERTIFICATE"):
		return fmt.Errorf("key %s holds a certificate, not a private key; give the PEM private key file", name)
	case slices.Contains(seen, "PUBLIC KEY"):
		return fmt.Errorf("key %s holds a public key, not a private key; give the private key (the .key file, not the .pub)", name)
	case len(seen) > 0:
		return fmt.Errorf("key %s holds no private key (PEM blocks: %s); want a PKCS#8 \"PRIVATE KEY\" PEM file", name, strings.Join(seen, ", "))
	}
	return fmt.Errorf("key %s: no PEM private key found; want a PKCS#8 \"PRIVATE KEY\" PEM file", name)
}

// RoleSigner turns a private key into the sigstore signer go-tuf uses:
// ed25519 signs the message itself, ECDSA P-256 signs its SHA-256.
func RoleSigner(priv crypto.Signer) (signature.Signer, error) {
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		return signature.LoadED25519SignerVerifier(k)
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("it is an ECDSA %s key; TUF role keys are Ed25519 or ECDSA P-256 (bcpublish keys generate makes them)", k.Curve.Params().Name)
		}
		return signature.LoadECDSASignerVerifier(k, crypto.SHA256)
	case *rsa.PrivateKey:
		return nil, errors.New("it is an RSA key, such as a code-signing key; TUF role keys are Ed25519 or ECDSA P-256 (bcpublish keys generate makes them)")
	default:
		return nil, fmt.Errorf("unsupported role key type %T; TUF role keys are Ed25519 or ECDSA P-256 (bcpublish keys generate makes them)", priv)
	}
}

// LoadRoleSigner reads a role key file and returns its sigstore signer.
func LoadRoleSigner(path string) (signature.Signer, error) {
	priv, err := LoadPrivateKey(path)
	if err != nil {
		return nil, err
	}
	s, err := RoleSigner(priv)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return s, nil
}
