package signer_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/signer"
)

func TestVerifyDetached(t *testing.T) {
	pki := testutil.NewPKI(t)
	trust, err := signer.LoadTrust(pki.TrustDir)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("notification-client 1.0.0\n")
	otherRoot := testutil.NewRoot(t, "Untrusted Root")
	otherInter := otherRoot.Intermediate(t, "Untrusted CA")

	sign := func(l *testutil.Leaf) []byte {
		t.Helper()
		sig, err := signer.SignDetached(bytes.NewReader(content), l.Chain, l.Key)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	good := sign(pki.Leaf)
	tamperedSig := bytes.Clone(good)
	tamperedSig[len(tamperedSig)-5] ^= 0x01

	cases := []struct {
		name    string
		content []byte
		sig     []byte
		wantErr string // empty: must verify
	}{
		{"valid", content, good, ""},
		{"content changed", []byte("notification-client 1.0.1\n"), good, "content does not match"},
		{"signature tampered", content, tamperedSig, "does not verify"},
		{"garbage signature", content, []byte("not a signature"), "not a DER CMS"},
		{"untrusted root", content, sign(otherInter.Leaf(t, testutil.LeafOptions{})), "does not chain to a pinned root"},
		{"no EKU", content, sign(pki.Intermediate.Leaf(t, testutil.LeafOptions{NoEKU: true})), "does not list codeSigning"},
		{"anyEKU", content, sign(pki.Intermediate.Leaf(t, testutil.LeafOptions{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})), "anyExtendedKeyUsage"},
		{"serverAuth only", content, sign(pki.Intermediate.Leaf(t, testutil.LeafOptions{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})), "does not list codeSigning"},
		{"expired", content, sign(pki.Intermediate.Leaf(t, testutil.LeafOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})), "expired"},
		{"not yet valid", content, sign(pki.Intermediate.Leaf(t, testutil.LeafOptions{NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(48 * time.Hour)})), "not valid before"},
		{"other publisher same root", content, sign(pki.Intermediate.Leaf(t, testutil.LeafOptions{Organization: "Mallory Software"})), "not an allowed publisher"},
		{"CA as leaf", content, sign(pki.Intermediate.Leaf(t, testutil.LeafOptions{IsCA: true})), "is a CA"},
		{"no digitalSignature", content, sign(pki.Intermediate.Leaf(t, testutil.LeafOptions{KeyUsage: x509.KeyUsageContentCommitment})), "digitalSignature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := trust.VerifyDetached(bytes.NewReader(tc.content), tc.sig)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				if res.Publisher.String() != "O=Example Lab Software" || len(res.Chain) != 3 {
					t.Fatalf("unexpected result %+v", res)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q, got success", tc.wantErr)
			}
			if !errors.Is(err, signer.ErrVerification) {
				t.Errorf("error %v is not ErrVerification", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestPublisherPinning(t *testing.T) {
	pki := testutil.NewPKI(t)
	content := []byte("x")
	sig, err := signer.SignDetached(bytes.NewReader(content), pki.Leaf.Chain, pki.Leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		publisher string
		ok        bool
	}{
		{"organization", "O=Example Lab Software", true},
		{"common name", "CN=Example Lab Software Release Signing", true},
		{"leaf key", "spki-sha256:" + signer.SPKIHash(pki.Leaf.Cert), true},
		{"intermediate key", "spki-sha256:" + signer.SPKIHash(pki.Intermediate.Cert), true},
		{"root key is not an identity", "spki-sha256:" + signer.SPKIHash(pki.Root.Cert), false},
		{"other organization", "O=Someone Else", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "trust")
			testutil.WriteTrustDir(t, dir, []*x509.Certificate{pki.Root.Cert}, tc.publisher)
			trust, err := signer.LoadTrust(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = trust.VerifyDetached(bytes.NewReader(content), sig)
			if (err == nil) != tc.ok {
				t.Fatalf("ok=%v, err=%v", tc.ok, err)
			}
		})
	}
}

func TestLoadTrustErrors(t *testing.T) {
	pki := testutil.NewPKI(t)
	cases := map[string]func(dir string){
		"no roots": func(dir string) { os.RemoveAll(filepath.Join(dir, "roots")) },
		"no publishers": func(dir string) {
			os.WriteFile(filepath.Join(dir, "publishers"), []byte("# none\n"), 0o644)
		},
		"bad publisher line": func(dir string) {
			os.WriteFile(filepath.Join(dir, "publishers"), []byte("Example Lab Software\n"), 0o644)
		},
		"leaf as root": func(dir string) {
			testutil.WriteCerts(t, filepath.Join(dir, "roots", "leaf.pem"), pki.Leaf.Cert)
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "trust")
			testutil.WriteTrustDir(t, dir, []*x509.Certificate{pki.Root.Cert}, "O=Example Lab Software")
			mutate(dir)
			if _, err := signer.LoadTrust(dir); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

// TestOpenSSLInterop verifies signatures made the way vendors make them:
// `openssl cms -sign -binary -outform DER` (what signtool /p7 emits too).
func TestOpenSSLInterop(t *testing.T) {
	openssl := testutil.NeedTool(t, "openssl")
	pki := testutil.NewPKI(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "artifact.tar.gz")
	content := bytes.Repeat([]byte("payload "), 100000)
	os.WriteFile(file, content, 0o644)
	testutil.WriteCerts(t, filepath.Join(dir, "leaf.pem"), pki.Leaf.Cert)
	testutil.WriteCerts(t, filepath.Join(dir, "chain.pem"), pki.Intermediate.Cert)
	testutil.WriteKey(t, filepath.Join(dir, "leaf.key"), pki.Leaf.Key)
	cmd := exec.Command(openssl, "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
		"-in", file, "-signer", filepath.Join(dir, "leaf.pem"), "-inkey", filepath.Join(dir, "leaf.key"),
		"-certfile", filepath.Join(dir, "chain.pem"), "-out", file+".p7s")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	sig, _ := os.ReadFile(file + ".p7s")
	trust, err := signer.LoadTrust(pki.TrustDir)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(file)
	defer f.Close()
	if _, err := trust.VerifyDetached(f, sig); err != nil {
		t.Fatalf("openssl signature rejected: %v", err)
	}
	// And ours verifies with openssl against the same root.
	ours, err := signer.SignDetached(bytes.NewReader(content), pki.Leaf.Chain, pki.Leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(file+".ours.p7s", ours, 0o644)
	testutil.WriteCerts(t, filepath.Join(dir, "root.pem"), pki.Root.Cert)
	cmd = exec.Command(openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", file+".ours.p7s",
		"-content", file, "-CAfile", filepath.Join(dir, "root.pem"), "-purpose", "any", "-out", os.DevNull)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl rejects our signature: %v\n%s", err, out)
	}
}

func TestRoleKeys(t *testing.T) {
	for _, typ := range []string{signer.KeyTypeEd25519, signer.KeyTypeECDSAP256} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			k, err := signer.GenerateKey(typ)
			if err != nil {
				t.Fatal(err)
			}
			priv, pub := filepath.Join(dir, "root.key"), filepath.Join(dir, "root.pub")
			if err := signer.WriteKeyPair(priv, pub, k); err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(priv)
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("private key mode %o, want 600", fi.Mode().Perm())
			}
			if err := signer.WriteKeyPair(priv, pub, k); err == nil {
				t.Error("overwrote an existing key")
			}
			s, err := signer.LoadRoleSigner(priv)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.SignMessage(strings.NewReader("hello"))
			if err != nil || len(sig) == 0 {
				t.Fatal(err)
			}
			os.Chmod(priv, 0o644)
			if _, err := signer.LoadRoleSigner(priv); err == nil {
				t.Error("loaded a world-readable key")
			}
		})
	}
	if _, err := signer.GenerateKey("rsa"); err == nil {
		t.Error("accepted unknown key type")
	}
}
