package testutil

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/third_party/relic/pkcs7"
	"github.com/beckmanconnect/bcupdate/internal/third_party/relic/pkcs9"
	"github.com/beckmanconnect/bcupdate/internal/third_party/relic/x509tools"
)

// TSA is an RFC 3161 timestamp authority made for a test: its own root and
// a leaf with a critical, timeStamping-only EKU, as RFC 3161 requires.
type TSA struct {
	Root  *CA
	Cert  *x509.Certificate
	Key   crypto.Signer
	Chain []*x509.Certificate // leaf, then root
}

// NewTSA makes a timestamp authority under a new root.
func NewTSA(t testing.TB, name string) *TSA {
	t.Helper()
	root := NewRoot(t, name+" Root")
	key := newKey(t)
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Example Timestamping"}},
		NotBefore:             time.Now().Add(-10 * 365 * 24 * time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}
	cert := issue(t, tmpl, root.Cert, key.Public(), root.Key)
	return &TSA{Root: root, Cert: cert, Key: key, Chain: []*x509.Certificate{cert, root.Cert}}
}

// Token makes a timestamp token over signature bytes (a SignerInfo's
// encrypted digest) at the given time.
func (ts *TSA) Token(t testing.TB, signature []byte, at time.Time) *pkcs7.ContentInfoSignedData {
	t.Helper()
	alg, _ := x509tools.PkixDigestAlgorithm(crypto.SHA256)
	sum := sha256.Sum256(signature)
	gen, err := asn1.MarshalWithParams(at.UTC().Truncate(time.Second), "generalized")
	if err != nil {
		t.Fatal(err)
	}
	info := pkcs9.TSTInfo{
		Version:        1,
		Policy:         asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 2},
		MessageImprint: pkcs9.MessageImprint{HashAlgorithm: alg, HashedMessage: sum[:]},
		SerialNumber:   big.NewInt(at.UnixNano()),
		GenTime:        asn1.RawValue{FullBytes: gen},
	}
	der, err := asn1.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	b := pkcs7.NewBuilder(ts.Key, ts.Chain, crypto.SHA256)
	// eContent is an OCTET STRING holding the DER TSTInfo (RFC 3161).
	if err := b.SetContent(pkcs9.OidTSTInfo, der); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAuthenticatedAttribute(pkcs7.OidAttributeSigningTime, at.UTC()); err != nil {
		t.Fatal(err)
	}
	tok, err := b.Sign()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TimestampCMS adds a timestamp token for time at to a detached CMS
// signature (DER) and returns the new DER.
func TimestampCMS(t testing.TB, sig []byte, ts *TSA, at time.Time) []byte {
	t.Helper()
	psd, err := pkcs7.Unmarshal(sig)
	if err != nil {
		t.Fatal(err)
	}
	si := &psd.Content.SignerInfos[0]
	si.RawContent = nil // else asn1 re-emits the original bytes
	if err := pkcs9.AddStampToSignedData(si, *ts.Token(t, si.EncryptedDigest, at)); err != nil {
		t.Fatal(err)
	}
	out, err := psd.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RevokedCert is one CRL entry.
type RevokedCert struct {
	Cert   *x509.Certificate
	At     time.Time
	Reason int
}

// CRL issues a DER CRL from ca, valid from thisUpdate to nextUpdate.
func (ca *CA) CRL(t testing.TB, thisUpdate, nextUpdate time.Time, revoked ...RevokedCert) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, r := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: r.Cert.SerialNumber, RevocationTime: r.At, ReasonCode: r.Reason})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(thisUpdate.Unix()), ThisUpdate: thisUpdate, NextUpdate: nextUpdate,
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Impostor is a CA with the same name as ca but another key, to forge CRLs.
func (ca *CA) Impostor(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := *ca.Cert
	tmpl.SerialNumber = serial(t)
	tmpl.SubjectKeyId = nil
	tmpl.AuthorityKeyId = nil
	tmpl.PublicKey = key.Public()
	cert := issue(t, &tmpl, &tmpl, key.Public(), key)
	return &CA{Cert: cert, Key: key}
}

// SelfSignedLeaf is a code-signing certificate that signed itself.
func SelfSignedLeaf(t testing.TB) *Leaf {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "Example Lab Software Release Signing", Organization: []string{"Example Lab Software"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
	cert := issue(t, tmpl, tmpl, key.Public(), key)
	return &Leaf{Cert: cert, Key: key, Chain: []*x509.Certificate{cert}}
}
