package testutil

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/third_party/relic/pkcs7"
	"github.com/beckmanconnect/bcupdate/internal/third_party/relic/pkcs9"
)

// Run runs a command and returns its combined output.
func Run(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// Unsigned inputs, built once per test binary with the tools vendors use.
var (
	buildOnce        sync.Once
	unsignedPE, uMSI string
	buildErr         error
)

// Unsigned returns a fresh copy of an unsigned PE ("exe": GOOS=windows go
// build) or MSI ("msi": wixl).
func Unsigned(t testing.TB, kind string) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bcupdate-unsigned-")
		if err != nil {
			buildErr = err
			return
		}
		os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { println(\"notification-client\") }\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/nc\n\ngo 1.22\n"), 0o644)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", "nc.exe", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		unsignedPE = filepath.Join(dir, "nc.exe")
		if _, err := exec.LookPath("wixl"); err == nil {
			os.WriteFile(filepath.Join(dir, "VERSION"), []byte("1.1.0\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "nc.wxs"), []byte(wxs), 0o644)
			cmd := exec.Command("wixl", "-o", "nc.msi", "nc.wxs")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("wixl: %v\n%s", err, out)
				return
			}
			uMSI = filepath.Join(dir, "nc.msi")
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	src := unsignedPE
	if kind == "msi" {
		NeedTools(t, "wixl")
		src = uMSI
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "notification-client."+kind)
	os.WriteFile(dst, b, 0o644)
	return dst
}

const wxs = `<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="*" Name="Notification Client" Language="1033" Version="1.1.0" Manufacturer="Example Lab Software" UpgradeCode="6f1f2a4e-0b8c-4a53-9d55-3a6f0e1b2c01">
    <Package InstallerVersion="200" Compressed="yes" />
    <Media Id="1" Cabinet="nc.cab" EmbedCab="yes" />
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFilesFolder">
        <Directory Id="INSTALLDIR" Name="NotificationClient">
          <Component Id="Main" Guid="6f1f2a4e-0b8c-4a53-9d55-3a6f0e1b2c02">
            <File Id="Version" Source="VERSION" />
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Main" Level="1"><ComponentRef Id="Main" /></Feature>
  </Product>
</Wix>
`

// World is a code-signing PKI with a pinned timestamp authority, its trust
// directory and its files on disk, for tests that sign the way vendors do.
type World struct {
	PKI      *PKI
	TSA      *TSA
	Dir      string
	TrustDir string
}

// NewWorld makes a World under t.TempDir().
func NewWorld(t testing.TB) *World {
	t.Helper()
	w := &World{PKI: NewPKI(t), TSA: NewTSA(t, "Example Timestamping Authority"), Dir: t.TempDir()}
	w.TrustDir = filepath.Join(w.Dir, "trust")
	WriteTrustDir(t, w.TrustDir, []*x509.Certificate{w.PKI.Root.Cert}, "O=Example Lab Software")
	os.MkdirAll(filepath.Join(w.TrustDir, "tsa-roots"), 0o755)
	WriteCerts(t, filepath.Join(w.TrustDir, "tsa-roots", "tsa.pem"), w.TSA.Root.Cert)
	WriteCerts(t, filepath.Join(w.Dir, "root.pem"), w.PKI.Root.Cert)
	WriteCerts(t, filepath.Join(w.Dir, "tsa-root.pem"), w.TSA.Root.Cert)
	WriteCerts(t, filepath.Join(w.Dir, "tsa-chain.pem"), w.TSA.Chain...)
	WriteKey(t, filepath.Join(w.Dir, "tsa.key"), w.TSA.Key)
	return w
}

// OsslSign signs a PE or MSI with osslsigncode; ts is the timestamp time
// (zero: no timestamp); hash is sha256 unless given.
func (w *World) OsslSign(t testing.TB, in string, leaf *Leaf, ts time.Time, hash string) string {
	t.Helper()
	NeedTools(t, "osslsigncode")
	if hash == "" {
		hash = "sha256"
	}
	certs := filepath.Join(t.TempDir(), "chain.pem")
	key := filepath.Join(t.TempDir(), "leaf.key")
	WriteCerts(t, certs, leaf.Chain...)
	WriteKey(t, key, leaf.Key)
	out := filepath.Join(t.TempDir(), filepath.Base(in))
	args := []string{"sign", "-certs", certs, "-key", key, "-h", hash, "-n", "Notification Client", "-in", in, "-out", out}
	if !ts.IsZero() {
		args = append(args, "-TSA-certs", filepath.Join(w.Dir, "tsa-chain.pem"), "-TSA-key", filepath.Join(w.Dir, "tsa.key"),
			"-TSA-time", strconv.FormatInt(ts.Unix(), 10))
	}
	if o, err := Run(t, "osslsigncode", args...); err != nil {
		t.Fatalf("osslsigncode sign: %v\n%s", err, o)
	}
	return out
}

// OsslVerify reports whether osslsigncode accepts the file against the
// pinned roots.
func (w *World) OsslVerify(t testing.TB, f string) bool {
	t.Helper()
	_, err := Run(t, "osslsigncode", "verify", "-in", f, "-CAfile", filepath.Join(w.Dir, "root.pem"),
		"-TSA-CAfile", filepath.Join(w.Dir, "tsa-root.pem"), "-ignore-cdp")
	return err == nil
}

// OpensslCMS signs content with openssl cms the way vendors do and returns
// the content's path and the DER signature.
func (w *World) OpensslCMS(t testing.TB, content []byte, leaf *Leaf, md string) (string, []byte) {
	t.Helper()
	NeedTools(t, "openssl")
	dir := t.TempDir()
	f := filepath.Join(dir, "notification-client.tar.gz")
	os.WriteFile(f, content, 0o644)
	WriteCerts(t, filepath.Join(dir, "leaf.pem"), leaf.Cert)
	WriteKey(t, filepath.Join(dir, "leaf.key"), leaf.Key)
	args := []string{"cms", "-sign", "-binary", "-outform", "DER", "-md", md, "-in", f,
		"-signer", filepath.Join(dir, "leaf.pem"), "-inkey", filepath.Join(dir, "leaf.key"), "-out", f + ".p7s"}
	if len(leaf.Chain) > 1 {
		WriteCerts(t, filepath.Join(dir, "chain.pem"), leaf.Chain[1:]...)
		args = append(args, "-certfile", filepath.Join(dir, "chain.pem"))
	}
	if o, err := Run(t, "openssl", args...); err != nil {
		t.Fatalf("openssl cms -sign: %v\n%s", err, o)
	}
	sig, _ := os.ReadFile(f + ".p7s")
	return f, sig
}

// OpensslVerify reports whether openssl cms -verify accepts a detached
// signature against the pinned root (any purpose: openssl has no
// code-signing purpose for CMS), with the trust directory's CRLs if crl.
func (w *World) OpensslVerify(t testing.TB, f string, sig []byte, crl bool) bool {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "sig.p7s")
	os.WriteFile(p, sig, 0o644)
	ca, _ := os.ReadFile(filepath.Join(w.Dir, "root.pem"))
	args := []string{"cms", "-verify", "-binary", "-inform", "DER", "-in", p, "-content", f, "-purpose", "any", "-out", os.DevNull}
	if crl {
		entries, _ := os.ReadDir(filepath.Join(w.TrustDir, "crl"))
		for _, e := range entries {
			der, _ := os.ReadFile(filepath.Join(w.TrustDir, "crl", e.Name()))
			ca = append(ca, pemBlock("X509 CRL", der)...)
		}
		args = append(args, "-crl_check_all")
	}
	os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o644)
	args = append(args, "-CAfile", filepath.Join(dir, "ca.pem"))
	_, err := Run(t, "openssl", args...)
	return err == nil
}

// SetCRL puts a CRL into the trust directory's crl/ for the rest of the test.
func (w *World) SetCRL(t testing.TB, der []byte) {
	t.Helper()
	os.MkdirAll(filepath.Join(w.TrustDir, "crl"), 0o755)
	os.WriteFile(filepath.Join(w.TrustDir, "crl", "ca.crl"), der, 0o644)
	t.Cleanup(func() { os.RemoveAll(filepath.Join(w.TrustDir, "crl")) })
}

// Signed is an artifact with its signature: Kind is "cms" (Sig is the
// .p7s) or "authenticode" (embedded).
type Signed struct {
	File string
	Kind string
	Sig  []byte
}

// BadCase is one way a code signature must be refused.
type BadCase struct {
	Name string
	Make func(t *testing.T) Signed
	// Want is a part of the refusal message that names the reason.
	Want string
	// Agree: osslsigncode / openssl refuse it too. Otherwise Rule names
	// the rule by which we are stricter (or follow Windows).
	Agree bool
	Rule  string
}

const year = 365 * 24 * time.Hour

// BadCases are the code signatures every verifier of bcupdate must refuse.
// signDetached is signer.SignDetached (passed in: testutil does not import
// the packages it tests).
func (w *World) BadCases(signDetached func(content []byte, chain []*x509.Certificate, key any) []byte) []BadCase {
	content := []byte("notification-client 1.1.0")
	cms := func(t *testing.T, leaf *Leaf) Signed {
		f, sig := w.OpensslCMS(t, content, leaf, "sha256")
		return Signed{f, "cms", sig}
	}
	ours := func(t *testing.T, leaf *Leaf, stampAt time.Time, tsa *TSA) Signed {
		sig := signDetached(content, leaf.Chain, leaf.Key)
		if tsa != nil {
			sig = TimestampCMS(t, sig, tsa, stampAt)
		}
		f := filepath.Join(t.TempDir(), "notification-client.tar.gz")
		os.WriteFile(f, content, 0o644)
		return Signed{f, "cms", sig}
	}
	pe := func(t *testing.T, leaf *Leaf, ts time.Time) Signed {
		return Signed{w.OsslSign(t, Unsigned(t, "exe"), leaf, ts, ""), "authenticode", nil}
	}
	inter := w.PKI.Intermediate
	now := time.Now()
	return []BadCase{
		{"untrusted root", func(t *testing.T) Signed {
			return cms(t, NewRoot(t, "Evil Root").Intermediate(t, "Evil CA").Leaf(t, LeafOptions{}))
		}, "does not chain to a pinned root", true, ""},
		{"self-signed leaf", func(t *testing.T) Signed { return cms(t, SelfSignedLeaf(t)) },
			"does not chain to a pinned root", true, ""},
		{"no EKU", func(t *testing.T) Signed { return cms(t, inter.Leaf(t, LeafOptions{NoEKU: true})) },
			"does not list codeSigning", false, "the leaf must list codeSigning explicitly; OpenSSL and Go accept a leaf with no EKU"},
		{"anyEKU", func(t *testing.T) Signed {
			return cms(t, inter.Leaf(t, LeafOptions{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}))
		}, "anyExtendedKeyUsage", false, "anyExtendedKeyUsage is not codeSigning"},
		{"serverAuth-only leaf", func(t *testing.T) Signed {
			return cms(t, inter.Leaf(t, LeafOptions{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}))
		}, "does not list codeSigning", false, "openssl cms -purpose any ignores the EKU; a TLS certificate must not sign code"},
		{"intermediate whose EKU excludes codeSigning", func(t *testing.T) Signed {
			tls := w.PKI.Root.IntermediateEKU(t, "Example TLS CA", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
			return cms(t, tls.Leaf(t, LeafOptions{}))
		}, "does not allow codeSigning", false, "EKU constraints of intermediates nest (as Windows and Go enforce)"},
		{"CA leaf", func(t *testing.T) Signed { return cms(t, inter.Leaf(t, LeafOptions{IsCA: true})) },
			"is a CA", false, "a CA certificate must not sign code directly"},
		{"expired without timestamp", func(t *testing.T) Signed {
			return pe(t, inter.Leaf(t, LeafOptions{NotBefore: now.Add(-3 * year), NotAfter: now.Add(-year)}), time.Time{})
		}, "expired", true, ""},
		{"not yet valid", func(t *testing.T) Signed {
			return pe(t, inter.Leaf(t, LeafOptions{NotBefore: now.Add(year), NotAfter: now.Add(2 * year)}), time.Time{})
		}, "not valid before", true, ""},
		{"timestamp from an untrusted TSA", func(t *testing.T) Signed {
			return ours(t, w.PKI.Leaf, now.Add(-30*time.Minute), NewTSA(t, "Rogue TSA"))
		}, "timestamp authority CN=Rogue TSA", false, "a timestamp must come from a TSA pinned in tsa-roots/"},
		{"timestamp over other content", func(t *testing.T) Signed {
			s := ours(t, w.PKI.Leaf, time.Time{}, nil)
			other := signDetached([]byte("other"), w.PKI.Leaf.Chain, w.PKI.Leaf.Key)
			// Move a timestamp made for another signature onto this one.
			s.Sig = GraftTimestamp(t, s.Sig, TimestampCMS(t, other, w.TSA, now))
			return s
		}, "timestamp does not verify or does not match", false, "the timestamp must cover this signature's value"},
		{"revoked leaf (keyCompromise), even before the revocation", func(t *testing.T) Signed {
			leaf := inter.Leaf(t, LeafOptions{})
			w.SetCRL(t, inter.CRL(t, now.Add(-time.Hour), now.Add(7*24*time.Hour), RevokedCert{Cert: leaf.Cert, At: now.Add(-time.Minute), Reason: 1}))
			return ours(t, leaf, now.Add(-30*time.Minute), w.TSA)
		}, "revoked for keyCompromise", false, "keyCompromise revokes every signature, timestamped or not (Windows)"},
		{"revoked before the timestamp", func(t *testing.T) Signed {
			leaf := inter.Leaf(t, LeafOptions{})
			w.SetCRL(t, inter.CRL(t, now.Add(-time.Hour), now.Add(7*24*time.Hour), RevokedCert{Cert: leaf.Cert, At: now.Add(-2 * time.Hour), Reason: 4}))
			return ours(t, leaf, now.Add(-time.Minute), w.TSA)
		}, "before the trusted timestamp", true, ""},
		{"revoked intermediate without timestamp", func(t *testing.T) Signed {
			sub := w.PKI.Root.Intermediate(t, "Example Code Signing CA G2")
			w.SetCRL(t, w.PKI.Root.CRL(t, now.Add(-time.Hour), now.Add(7*24*time.Hour), RevokedCert{Cert: sub.Cert, At: now.Add(-time.Hour), Reason: 5}))
			return ours(t, sub.Leaf(t, LeafOptions{}), time.Time{}, nil)
		}, "has no trusted timestamp", true, ""},
		{"stale CRL", func(t *testing.T) Signed {
			w.SetCRL(t, inter.CRL(t, now.Add(-30*24*time.Hour), now.Add(-10*24*time.Hour)))
			return ours(t, w.PKI.Leaf, time.Time{}, nil)
		}, "is stale", false, "a CRL past nextUpdate plus the grace fails closed"},
		{"CRL signed by the wrong issuer", func(t *testing.T) Signed {
			w.SetCRL(t, inter.Impostor(t).CRL(t, now.Add(-time.Hour), now.Add(7*24*time.Hour)))
			return ours(t, w.PKI.Leaf, time.Time{}, nil)
		}, "is not signed by it", false, "a CRL that claims the issuer's name but not its key is an attack or a mistake: fail closed"},
		{"other publisher from the same root", func(t *testing.T) Signed {
			return cms(t, inter.Leaf(t, LeafOptions{Organization: "Mallory Diagnostics"}))
		}, "not an allowed publisher", false, "the publisher identity is pinned: the root alone would accept every customer of the CA"},
		{"tampered PE", func(t *testing.T) Signed {
			s := pe(t, w.PKI.Leaf, time.Time{})
			b, _ := os.ReadFile(s.File)
			b[0x200] ^= 0xff // inside the first section
			os.WriteFile(s.File, b, 0o644)
			return s
		}, "does not verify", true, ""},
		{"tampered MSI", func(t *testing.T) Signed {
			f := w.OsslSign(t, Unsigned(t, "msi"), w.PKI.Leaf, time.Time{}, "")
			b, _ := os.ReadFile(f)
			i := bytes.Index(b, []byte("1.1.0"))
			if i < 0 {
				t.Fatal("no version string in the MSI")
			}
			b[i+4] = '9'
			os.WriteFile(f, b, 0o644)
			return Signed{f, "authenticode", nil}
		}, "does not verify", true, ""},
		{"RSA-1024 leaf", func(t *testing.T) Signed { return cms(t, inter.Leaf(t, LeafOptions{RSABits: 1024})) },
			"RSA-1024", false, "RSA keys below 2048 bits are refused"},
		{"SHA-1 digest (CMS)", func(t *testing.T) Signed {
			f, sig := w.OpensslCMS(t, content, w.PKI.Leaf, "sha1")
			return Signed{f, "cms", sig}
		}, "SHA-1", false, "SHA-1 digests are refused"},
		{"SHA-1 digest (PE)", func(t *testing.T) Signed {
			return Signed{w.OsslSign(t, Unsigned(t, "exe"), w.PKI.Leaf, time.Time{}, "sha1"), "authenticode", nil}
		}, "SHA-1", false, "SHA-1 digests are refused"},
		{"unknown critical extension", func(t *testing.T) Signed {
			return cms(t, inter.Leaf(t, LeafOptions{CriticalExtension: true}))
		}, "unknown critical extension 1.3.6.1.4.1.99999.1", true, ""},
		{"not signed at all (PE)", func(t *testing.T) Signed {
			return Signed{Unsigned(t, "exe"), "authenticode", nil}
		}, "not signed", true, ""},
	}
}

// GraftTimestamp moves the timestamp token of donor onto sig.
func GraftTimestamp(t testing.TB, sig, donor []byte) []byte {
	t.Helper()
	d, err := pkcs7.Unmarshal(donor)
	if err != nil {
		t.Fatal(err)
	}
	var tok pkcs7.ContentInfoSignedData
	if err := d.Content.SignerInfos[0].UnauthenticatedAttributes.GetOne(pkcs9.OidAttributeTimeStampToken, &tok); err != nil {
		t.Fatal(err)
	}
	p, err := pkcs7.Unmarshal(sig)
	if err != nil {
		t.Fatal(err)
	}
	si := &p.Content.SignerInfos[0]
	si.RawContent = nil
	if err := pkcs9.AddStampToSignedData(si, tok); err != nil {
		t.Fatal(err)
	}
	out, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
