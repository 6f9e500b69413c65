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
// Windows executables and installers are checked for embedded Authenticode.
func VerifyFile(trustDir, file, sigPath string) (*signer.Result, error) {
	trust, err := signer.LoadTrust(trustDir)
	if err != nil {
		return nil, usagef("--trust: %v", err)
	}
	if _, err := os.Stat(file); err != nil {
		return nil, usagef("--file: %v", err)
	}
	kind := signer.KindFor(file)
	var sig []byte
	if kind == signer.KindCMS {
		if sigPath == "" {
			sigPath = file + ".p7s"
		}
		if sig, err = os.ReadFile(sigPath); err != nil {
			return nil, usagef("--signature: %v", err)
		}
	}
	res, err := trust.VerifyFile(file, kind, sig)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return res, nil
}
