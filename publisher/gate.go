package publisher

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/internal/regfile"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// CodeSigner signs bytes with the publisher's code-signing key (detached
// CMS), for gate manifests and device policies.
type CodeSigner func(content []byte) ([]byte, error)

// CodeSignerFromFiles signs with a certificate chain (leaf first) and the
// leaf's private key, PEM files as `bcpublish codesign sign` takes them.
func CodeSignerFromFiles(certPath, keyPath string) (CodeSigner, error) {
	chain, err := signer.LoadCertificates(certPath)
	if err != nil {
		return nil, usagef("--codesign-cert: %w", err)
	}
	key, err := signer.LoadPrivateKey(keyPath)
	if err != nil {
		return nil, usagef("--codesign-key: %w", err)
	}
	if err := checkCodeSigningKey("--codesign-key", keyPath, "--codesign-cert", certPath, key, chain[0]); err != nil {
		return nil, err
	}
	return func(content []byte) ([]byte, error) {
		return signer.SignDetached(bytes.NewReader(content), chain, key)
	}, nil
}

// readSmall reads a file the user named with a flag: a regular file (a
// device or FIFO is refused without reading or waiting on it), size-checked
// against limit before it is read. The usage error names the flag, the
// file and the limit: "--signature /dev/zero: not a regular file (a
// character device)".
func readSmall(flag, path string, limit int64) ([]byte, error) {
	data, err := regfile.Read(path, limit)
	if err != nil {
		return nil, usagef("%s %w", flag, err)
	}
	return data, nil
}

// fileErr makes a key or certificate file that is not a regular file, or
// is over its limit, a usage error (it is the name the user gave that is
// wrong); other errors pass unchanged.
func fileErr(err error) error {
	if errors.Is(err, regfile.ErrNotRegular) || errors.Is(err, regfile.ErrTooLarge) {
		return errs.Usage("", err)
	}
	return err
}

// openFlagFile opens a (possibly large) regular file the user named with a
// flag, for streaming.
func openFlagFile(flag, path string) (*os.File, fs.FileInfo, error) {
	f, fi, err := regfile.Open(path)
	if err != nil {
		return nil, nil, usagef("%s %w", flag, err)
	}
	return f, fi, nil
}

// GateManifestFor writes what `bcpublish release gate` prints: the gate
// manifest for an artifact, to be code-signed by the publisher (signtool
// /p7, openssl cms or bcpublish codesign sign) and given to release add
// with --gate.
func GateManifestFor(o ReleaseOptions) ([]byte, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(o.Features) == 0 {
		return nil, usagef("--feature: a gate manifest states the features a release turns on; give at least one")
	}
	_, sum, err := fileDigest(o.File)
	if err != nil {
		return nil, err
	}
	rel := &repo.Release{Component: o.Component, Version: o.Version, Platform: o.Platform, Features: o.Features}
	m, err := repo.NewGateManifest(rel, sum)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return m, nil
}

// gate makes (or takes) and verifies the code-signed gate manifest of a
// release with features, with the same trust as every agent. It fills
// rel.Features from a given manifest when no --feature was given.
func (o *ReleaseOptions) gate(rel *repo.Release, sum string, trust *signer.Trust) error {
	var manifest, sig []byte
	switch {
	case o.GateManifest != nil:
		m, err := repo.ParseGateManifest(o.GateManifest)
		if err != nil {
			return usagef("--gate: %v", err)
		}
		if len(rel.Features) == 0 {
			rel.Features = m.Features
		}
		if err := m.Match(rel, sum); err != nil {
			return usagef("--gate: %v", err)
		}
		if o.GateSignature == nil {
			return usagef("--gate-signature: the gate manifest needs its detached code signature (default: GATE.p7s)")
		}
		manifest, sig = o.GateManifest, o.GateSignature
	case len(rel.Features) == 0:
		return nil
	case o.GateSign != nil:
		var err error
		if manifest, err = repo.NewGateManifest(rel, sum); err != nil {
			return usagef("%v", err)
		}
		if sig, err = o.GateSign(manifest); err != nil {
			return fmt.Errorf("sign the gate manifest: %w", err)
		}
	default:
		return usagef("--feature: a release that turns on features needs a code-signed gate manifest, so that the TUF key alone cannot change what the consent gate asks: give --codesign-cert and --codesign-key, or --gate FILE from bcpublish release gate signed as FILE.p7s")
	}
	if _, err := trust.VerifyDetached(bytes.NewReader(manifest), sig); err != nil {
		return fmt.Errorf("gate manifest: %w", err)
	}
	rel.Gate = repo.NewGate(manifest, sig)
	return nil
}

// ReadGate reads a gate manifest and its detached signature (default
// GATE.p7s).
func ReadGate(manifestPath, sigPath string) ([]byte, []byte, error) {
	m, err := readSmall("--gate", manifestPath, repo.MaxGateManifestSize)
	if err != nil {
		return nil, nil, err
	}
	if sigPath == "" {
		sigPath = manifestPath + repo.SignatureSuffix
	}
	sig, err := readSmall("--gate-signature", sigPath, repo.MaxGateSignatureSize)
	if err != nil {
		return nil, nil, err
	}
	return m, sig, nil
}

// WriteFile writes a small output file atomically (0644).
func WriteFile(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o644)
}
