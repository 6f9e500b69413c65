package signer_test

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/signer"
)

// Unsigned inputs, built once per test binary with the tools vendors use.
var (
	buildOnce          sync.Once
	unsignedPE, unsMSI string
	buildErr           error
	buildDir           string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (CI installs it); skipping", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// unsigned returns a fresh copy of an unsigned PE (GOOS=windows go build)
// or MSI (wixl).
func unsigned(t *testing.T, kind string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "bcupdate-interop-")
		if buildErr != nil {
			return
		}
		src := filepath.Join(buildDir, "main.go")
		os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"notification-client\") }\n"), 0o644)
		os.WriteFile(filepath.Join(buildDir, "go.mod"), []byte("module example.com/nc\n\ngo 1.22\n"), 0o644)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", "nc.exe", ".")
		cmd.Dir = buildDir
		cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		unsignedPE = filepath.Join(buildDir, "nc.exe")
		if _, err := exec.LookPath("wixl"); err == nil {
			os.WriteFile(filepath.Join(buildDir, "VERSION"), []byte("1.1.0\n"), 0o644)
			os.WriteFile(filepath.Join(buildDir, "nc.wxs"), []byte(wxs), 0o644)
			cmd := exec.Command("wixl", "-o", "nc.msi", "nc.wxs")
			cmd.Dir = buildDir
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("wixl: %v\n%s", err, out)
				return
			}
			unsMSI = filepath.Join(buildDir, "nc.msi")
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	src := unsignedPE
	if kind == "msi" {
		need(t, "wixl")
		src = unsMSI
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "unsigned."+kind)
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

// world is one PKI with a pinned TSA and its files on disk.
type world struct {
	pki      *testutil.PKI
	tsa      *testutil.TSA
	dir      string
	trustDir string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{pki: testutil.NewPKI(t), tsa: testutil.NewTSA(t, "Example Timestamping Authority"), dir: t.TempDir()}
	w.trustDir = filepath.Join(w.dir, "trust")
	testutil.WriteTrustDir(t, w.trustDir, []*x509.Certificate{w.pki.Root.Cert}, "O=Example Lab Software")
	os.MkdirAll(filepath.Join(w.trustDir, "tsa-roots"), 0o755)
	testutil.WriteCerts(t, filepath.Join(w.trustDir, "tsa-roots", "tsa.pem"), w.tsa.Root.Cert)
	testutil.WriteCerts(t, filepath.Join(w.dir, "root.pem"), w.pki.Root.Cert)
	testutil.WriteCerts(t, filepath.Join(w.dir, "tsa-root.pem"), w.tsa.Root.Cert)
	testutil.WriteCerts(t, filepath.Join(w.dir, "tsa-chain.pem"), w.tsa.Chain...)
	testutil.WriteKey(t, filepath.Join(w.dir, "tsa.key"), w.tsa.Key)
	return w
}

func (w *world) trust(t *testing.T) *signer.Trust {
	t.Helper()
	tr, err := signer.LoadTrust(w.trustDir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// osslsign signs a PE or MSI with osslsigncode; ts is the timestamp time
// (zero: no timestamp); hash is sha256 unless given.
func (w *world) osslsign(t *testing.T, in string, leaf *testutil.Leaf, ts time.Time, hash string) string {
	t.Helper()
	need(t, "osslsigncode")
	if hash == "" {
		hash = "sha256"
	}
	certs := filepath.Join(t.TempDir(), "chain.pem")
	key := filepath.Join(t.TempDir(), "leaf.key")
	testutil.WriteCerts(t, certs, leaf.Chain...)
	testutil.WriteKey(t, key, leaf.Key)
	out := strings.TrimSuffix(in, filepath.Ext(in)) + ".signed" + filepath.Ext(in)
	args := []string{"sign", "-certs", certs, "-key", key, "-h", hash, "-n", "Notification Client", "-in", in, "-out", out}
	if !ts.IsZero() {
		args = append(args, "-TSA-certs", filepath.Join(w.dir, "tsa-chain.pem"), "-TSA-key", filepath.Join(w.dir, "tsa.key"),
			"-TSA-time", strconv.FormatInt(ts.Unix(), 10))
	}
	if o, err := run(t, "osslsigncode", args...); err != nil {
		t.Fatalf("osslsigncode sign: %v\n%s", err, o)
	}
	return out
}

// osslverify reports whether osslsigncode accepts the file against the
// pinned roots.
func (w *world) osslverify(t *testing.T, f string) bool {
	t.Helper()
	o, err := run(t, "osslsigncode", "verify", "-in", f, "-CAfile", filepath.Join(w.dir, "root.pem"),
		"-TSA-CAfile", filepath.Join(w.dir, "tsa-root.pem"), "-ignore-cdp")
	if testing.Verbose() {
		t.Logf("osslsigncode verify: err=%v\n%s", err, o)
	}
	return err == nil
}

// opensslCMS signs content with openssl cms the way vendors do.
func (w *world) opensslCMS(t *testing.T, content []byte, leaf *testutil.Leaf, md string) (string, []byte) {
	t.Helper()
	need(t, "openssl")
	dir := t.TempDir()
	f := filepath.Join(dir, "artifact.tar.gz")
	os.WriteFile(f, content, 0o644)
	testutil.WriteCerts(t, filepath.Join(dir, "leaf.pem"), leaf.Cert)
	testutil.WriteCerts(t, filepath.Join(dir, "chain.pem"), leaf.Chain[1:]...)
	testutil.WriteKey(t, filepath.Join(dir, "leaf.key"), leaf.Key)
	args := []string{"cms", "-sign", "-binary", "-outform", "DER", "-md", md, "-in", f,
		"-signer", filepath.Join(dir, "leaf.pem"), "-inkey", filepath.Join(dir, "leaf.key"), "-out", f + ".p7s"}
	if len(leaf.Chain) > 1 {
		args = append(args, "-certfile", filepath.Join(dir, "chain.pem"))
	}
	if o, err := run(t, "openssl", args...); err != nil {
		t.Fatalf("openssl cms -sign: %v\n%s", err, o)
	}
	sig, _ := os.ReadFile(f + ".p7s")
	return f, sig
}

// opensslVerify reports whether openssl cms -verify accepts a detached
// signature against the pinned root (any purpose: openssl has no
// code-signing purpose for CMS).
func (w *world) opensslVerify(t *testing.T, f string, sig []byte) bool {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sig.p7s")
	os.WriteFile(p, sig, 0o644)
	o, err := run(t, "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", p, "-content", f,
		"-CAfile", filepath.Join(w.dir, "root.pem"), "-purpose", "any", "-out", os.DevNull)
	if testing.Verbose() {
		t.Logf("openssl cms -verify: err=%v\n%s", err, o)
	}
	return err == nil
}

// TestAuthenticodeInterop: PE and MSI signed with osslsigncode, with and
// without timestamps, verify here exactly when osslsigncode says so.
func TestAuthenticodeInterop(t *testing.T) {
	need(t, "osslsigncode")
	w := newWorld(t)
	trust := w.trust(t)
	expired := w.pki.Intermediate.Leaf(t, testutil.LeafOptions{NotBefore: time.Now().Add(-3 * 365 * 24 * time.Hour), NotAfter: time.Now().Add(-365 * 24 * time.Hour)})
	during := time.Now().Add(-2 * 365 * 24 * time.Hour)
	cases := []struct {
		name string
		kind string
		leaf *testutil.Leaf
		ts   time.Time
		ok   bool
	}{
		{"PE", "exe", w.pki.Leaf, time.Time{}, true},
		{"PE timestamped", "exe", w.pki.Leaf, time.Now().Add(-time.Minute), true},
		{"PE expired leaf, timestamp inside its validity", "exe", expired, during, true},
		{"PE expired leaf, no timestamp", "exe", expired, time.Time{}, false},
		{"MSI", "msi", w.pki.Leaf, time.Time{}, true},
		{"MSI timestamped", "msi", w.pki.Leaf, time.Now().Add(-time.Minute), true},
		{"MSI expired leaf, timestamp inside its validity", "msi", expired, during, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := w.osslsign(t, unsigned(t, tc.kind), tc.leaf, tc.ts, "")
			res, err := trust.VerifyFile(f, signer.KindAuthenticode, nil)
			if (err == nil) != tc.ok {
				t.Fatalf("ok=%v, got %v", tc.ok, err)
			}
			if agree := w.osslverify(t, f); agree != tc.ok {
				t.Fatalf("osslsigncode verify says %v, we say %v (%v)", agree, tc.ok, err)
			}
			if err == nil {
				if res.Timestamped != !tc.ts.IsZero() || !strings.HasPrefix(res.Format, "Authenticode") {
					t.Fatalf("result %+v", res)
				}
				if tc.ts.IsZero() == false && !res.CheckedAt.Equal(tc.ts.UTC().Truncate(time.Second)) {
					t.Errorf("checked at %s, want the timestamp %s", res.CheckedAt, tc.ts)
				}
			}
		})
	}
}

// TestTimestampedCMS: an expired leaf with a trusted timestamp passes; the
// same without one fails (openssl cms -verify agrees on that one).
func TestTimestampedCMS(t *testing.T) {
	w := newWorld(t)
	trust := w.trust(t)
	expired := w.pki.Intermediate.Leaf(t, testutil.LeafOptions{NotBefore: time.Now().Add(-3 * 365 * 24 * time.Hour), NotAfter: time.Now().Add(-365 * 24 * time.Hour)})
	content := []byte("payload")
	f, sig := w.opensslCMS(t, content, expired, "sha256")
	if _, err := trust.VerifyDetached(bytes.NewReader(content), sig); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired, no timestamp: %v", err)
	}
	if w.opensslVerify(t, f, sig) {
		t.Fatal("openssl accepts an expired signer without a timestamp; we expected agreement")
	}
	stamped := testutil.TimestampCMS(t, sig, w.tsa, time.Now().Add(-2*365*24*time.Hour))
	res, err := trust.VerifyDetached(bytes.NewReader(content), stamped)
	if err != nil || !res.Timestamped {
		t.Fatalf("expired leaf with a trusted timestamp must pass: %+v %v", res, err)
	}
	if !strings.Contains(res.Explain(), "tsa[0] leaf") || !strings.Contains(res.Explain(), "timestamp: ") {
		t.Errorf("explain does not show the timestamp authority:\n%s", res.Explain())
	}
}
