package publisher

import (
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
