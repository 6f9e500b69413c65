package publisher

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/signer"
)

// SignFile writes a detached CMS signature of file to out (default
// file + ".p7s") with the chain in certPath (leaf first) and keyPath.
func SignFile(certPath, keyPath, file, out string) (string, error) {
	if out == "" {
		out = file + ".p7s"
	}
	chain, err := signer.LoadCertificates(certPath)
	if err != nil {
		return "", usagef("--cert: %w", err)
	}
	key, err := signer.LoadPrivateKey(keyPath)
	if err != nil {
		return "", usagef("--key: %w", err)
	}
	if err := checkCodeSigningKey("--key", keyPath, "--cert", certPath, key, chain[0]); err != nil {
		return "", err
	}
	f, _, err := openFlagFile("--file", file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sig, err := signer.SignDetached(f, chain, key)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	if err := atomicfile.WriteFile(out, sig, 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// checkCodeSigningKey is the usage error, naming the flags and files, of a
// key that cannot code-sign with the chain's leaf: CMS signatures take RSA
// or ECDSA keys (an Ed25519 TUF role key cannot), and the key must be the
// leaf certificate's own.
func checkCodeSigningKey(keyFlag, keyPath, certFlag, certPath string, key crypto.Signer, leaf *x509.Certificate) error {
	who := leaf.Subject.CommonName
	if who == "" {
		who = leaf.Subject.String()
	}
	if !codeSigningKeyKind(leaf.PublicKey) {
		return usagef("%s %s: the leaf certificate %q has %s; code signing needs an RSA or ECDSA certificate, leaf first",
			certFlag, certPath, who, keyKind(leaf.PublicKey))
	}
	if !codeSigningKeyKind(key.Public()) {
		return usagef("%s %s is %s, such as a TUF role key; code signing needs the RSA or ECDSA private key of the leaf certificate in %s %s",
			keyFlag, keyPath, keyKind(key.Public()), certFlag, certPath)
	}
	if k, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(leaf.PublicKey) {
		return usagef("%s %s (%s) is not the key of the leaf certificate in %s %s (%q, %s); give the private key that certificate was issued for",
			keyFlag, keyPath, keyKind(key.Public()), certFlag, certPath, who, keyKind(leaf.PublicKey))
	}
	return nil
}

// codeSigningKeyKind says whether CMS signatures can be made with pub's
// kind of key.
func codeSigningKeyKind(pub crypto.PublicKey) bool {
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return true
	}
	return false
}

// keyKind names a public key's kind for people: "an ECDSA P-256 key".
func keyKind(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return "an Ed25519 key"
	case *ecdsa.PublicKey:
		return "an ECDSA " + k.Curve.Params().Name + " key"
	case *rsa.PublicKey:
		return fmt.Sprintf("an RSA-%d key", k.N.BitLen())
	}
	return fmt.Sprintf("a key of type %T", pub)
}

// VerifyFile checks a file's detached signature against a trust directory.
// Windows executables and installers are checked for embedded Authenticode.
func VerifyFile(trustDir, file, sigPath string) (*signer.Result, error) {
	trust, err := signer.LoadTrust(trustDir)
	if err != nil {
		return nil, usagef("--trust: %w", err)
	}
	f, _, err := openFlagFile("--file", file)
	if err != nil {
		return nil, err
	}
	f.Close()
	kind := signer.KindFor(file)
	var sig []byte
	if kind == signer.KindCMS {
		if sigPath == "" {
			sigPath = file + ".p7s"
		}
		if sig, err = readSmall("--signature", sigPath, signer.MaxSignatureSize); err != nil {
			return nil, err
		}
	}
	res, err := trust.VerifyFile(file, kind, sig)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return res, nil
}
