package publisher

import (
	"fmt"
	"os"

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
		return "", usagef("--cert: %v", err)
	}
	key, err := signer.LoadPrivateKey(keyPath)
	if err != nil {
		return "", usagef("--key: %v", err)
	}
	f, err := os.Open(file)
	if err != nil {
		return "", usagef("--file: %v", err)
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

// VerifyFile checks a file's detached signature against a trust directory.
func VerifyFile(trustDir, file, sigPath string) (*signer.Result, error) {
	if sigPath == "" {
		sigPath = file + ".p7s"
	}
	trust, err := signer.LoadTrust(trustDir)
	if err != nil {
		return nil, usagef("--trust: %v", err)
	}
	sig, err := os.ReadFile(sigPath)
	if err != nil {
		return nil, usagef("--signature: %v", err)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, usagef("--file: %v", err)
	}
	defer f.Close()
	res, err := trust.VerifyDetached(f, sig)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return res, nil
}
