package signer_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/signer"
)

// FuzzVerifyDetached: hostile signature bytes never panic and are refused.
func FuzzVerifyDetached(f *testing.F) {
	pki := testutil.NewPKI(f)
	tsa := testutil.NewTSA(f, "Fuzz TSA")
	content := []byte("content")
	sig, err := signer.SignDetached(bytes.NewReader(content), pki.Leaf.Chain, pki.Leaf.Key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add(testutil.TimestampCMS(f, sig, tsa, time.Now()))
	f.Add([]byte{0x30, 0x80})
	f.Add([]byte{})
	trust, err := signer.LoadTrust(pki.TrustDir)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sig []byte) {
		res, err := trust.VerifyDetached(bytes.NewReader(content), sig)
		if err == nil && res.Publisher.String() != "O=Example Lab Software" {
			t.Fatalf("accepted with %+v", res)
		}
	})
}

// FuzzVerifyAuthenticode: hostile PE and MSI files never panic, are
// refused unless properly signed, and a hostile certificate-table size is
// refused before anything is allocated for it.
func FuzzVerifyAuthenticode(f *testing.F) {
	pki := testutil.NewPKI(f)
	trust, err := signer.LoadTrust(pki.TrustDir)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("MZ"))
	f.Add(append([]byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}, make([]byte, 600)...))
	pe := make([]byte, 512)
	copy(pe, "MZ")
	pe[0x3c] = 0x80
	copy(pe[0x80:], "PE\x00\x00")
	pe[0x80+20] = 0xf0                                // SizeOfOptionalHeader
	pe[0x98], pe[0x99] = 0x0b, 0x02                   // PE32+
	pe[0x98+112+32+4], pe[0x98+112+32+7] = 0x10, 0x7f // huge certificate table
	f.Add(pe)
	if _, err := exec.LookPath("osslsigncode"); err == nil {
		dir := f.TempDir()
		os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main(){}\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\ngo 1.22\n"), 0o644)
		cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", "x.exe", ".")
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
		if cmd.Run() == nil {
			testutil.WriteCerts(f, filepath.Join(dir, "chain.pem"), pki.Leaf.Chain...)
			testutil.WriteKey(f, filepath.Join(dir, "k.pem"), pki.Leaf.Key)
			if exec.Command("osslsigncode", "sign", "-certs", filepath.Join(dir, "chain.pem"), "-key", filepath.Join(dir, "k.pem"),
				"-in", filepath.Join(dir, "x.exe"), "-out", filepath.Join(dir, "s.exe")).Run() == nil {
				b, _ := os.ReadFile(filepath.Join(dir, "s.exe"))
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "f")
		os.WriteFile(p, data, 0o644)
		_, _ = trust.VerifyFile(p, signer.KindAuthenticode, nil)
	})
}
