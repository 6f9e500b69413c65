// Package testutil holds helpers shared by bcupdate's tests: a code-signing
// PKI made at test time, trust directories and file-tree hashing.
package testutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CA is a certificate authority made for a test.
type CA struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	chain []*x509.Certificate // this CA and its issuers below the root
}

// Leaf is a signing certificate with its key and the chain to send
// (leaf first, then intermediates, no root).
type Leaf struct {
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// LeafOptions shape a leaf certificate. The zero value is a valid
// code-signing leaf for "Example Lab Software" valid for a year.
type LeafOptions struct {
	CommonName   string
	Organization string
	EKU          []x509.ExtKeyUsage // nil means codeSigning; use NoEKU for none
	NoEKU        bool
	KeyUsage     x509.KeyUsage // 0 means digitalSignature
	IsCA         bool
	NotBefore    time.Time
	NotAfter     time.Time
	// RSABits makes an RSA key of that size instead of ECDSA P-256.
	RSABits int
	// CriticalExtension adds an unknown critical extension.
	CriticalExtension bool
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// issue creates and parses a certificate.
func issue(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// NewRoot makes a self-signed root CA.
func NewRoot(t testing.TB, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Example Trust Services"}},
		NotBefore:             time.Now().Add(-10 * 365 * 24 * time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	cert := issue(t, tmpl, tmpl, key.Public(), key)
	return &CA{Cert: cert, Key: key}
}

// Intermediate makes a code-signing intermediate CA under ca.
func (ca *CA) Intermediate(t testing.TB, cn string) *CA {
	t.Helper()
	return ca.IntermediateEKU(t, cn, []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning})
}

// IntermediateEKU makes an intermediate CA restricted to the given EKUs.
func (ca *CA) IntermediateEKU(t testing.TB, cn string, eku []x509.ExtKeyUsage) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Example Trust Services"}},
		NotBefore:             time.Now().Add(-8 * 365 * 24 * time.Hour),
		NotAfter:              time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	cert := issue(t, tmpl, ca.Cert, key.Public(), ca.Key)
	return &CA{Cert: cert, Key: key, chain: append([]*x509.Certificate{cert}, ca.chain...)}
}

// Leaf issues a signing certificate.
func (ca *CA) Leaf(t testing.TB, o LeafOptions) *Leaf {
	t.Helper()
	if o.CommonName == "" {
		o.CommonName = "Example Lab Software Release Signing"
	}
	if o.Organization == "" {
		o.Organization = "Example Lab Software"
	}
	eku := o.EKU
	if eku == nil && !o.NoEKU {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	}
	if o.NoEKU {
		eku = nil
	}
	ku := o.KeyUsage
	if ku == 0 {
		ku = x509.KeyUsageDigitalSignature
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	var key crypto.Signer = newKey(t)
	if o.RSABits > 0 {
		k, err := rsa.GenerateKey(rand.Reader, o.RSABits)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: o.CommonName, Organization: []string{o.Organization}},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  o.IsCA,
	}
	if o.CriticalExtension {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: true, Value: []byte{0x05, 0x00}}}
	}
	cert := issue(t, tmpl, ca.Cert, key.Public(), ca.Key)
	return &Leaf{Cert: cert, Key: key, Chain: append([]*x509.Certificate{cert}, ca.chain...)}
}

// PKI is the usual test setup: root → code-signing intermediate → leaf,
// with a trust directory that pins the root and the leaf's organization.
type PKI struct {
	Root         *CA
	Intermediate *CA
	Leaf         *Leaf
	TrustDir     string
}

// NewPKI makes a PKI and writes its trust directory under t.TempDir().
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	root := NewRoot(t, "Example Code Signing Root G1")
	inter := root.Intermediate(t, "Example Code Signing CA G1")
	leaf := inter.Leaf(t, LeafOptions{})
	dir := filepath.Join(t.TempDir(), "trust")
	WriteTrustDir(t, dir, []*x509.Certificate{root.Cert}, "O=Example Lab Software")
	return &PKI{Root: root, Intermediate: inter, Leaf: leaf, TrustDir: dir}
}

// WriteTrustDir writes roots/*.pem and publishers.
func WriteTrustDir(t testing.TB, dir string, roots []*x509.Certificate, publishers ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "roots"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, r := range roots {
		WriteCerts(t, filepath.Join(dir, "roots", "root"+string(rune('a'+i))+".pem"), r)
	}
	if err := os.WriteFile(filepath.Join(dir, "publishers"), []byte(strings.Join(publishers, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteCerts writes certificates as PEM.
func WriteCerts(t testing.TB, path string, certs ...*x509.Certificate) {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteKey writes a private key as PKCS#8 PEM, 0600.
func WriteKey(t testing.TB, path string, key crypto.Signer) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// HashTree returns a digest of every path, mode, link target and file
// content under dir, to prove that an operation changed nothing.
func HashTree(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		h.Write([]byte(rel + "\x00" + fi.Mode().String() + "\x00"))
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h.Write([]byte(target))
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		h.Write([]byte{0})
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
