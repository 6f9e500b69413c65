package signer_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/signer"
)

func loadTrust(t *testing.T, w *testutil.World) *signer.Trust {
	t.Helper()
	tr, err := signer.LoadTrust(w.TrustDir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func signDetached(content []byte, chain []*x509.Certificate, key any) []byte {
	sig, err := signer.SignDetached(bytes.NewReader(content), chain, key.(crypto.Signer))
	if err != nil {
		panic(err)
	}
	return sig
}

// TestAuthenticodeInterop: PE (GOOS=windows go build) and MSI (wixl) signed
// with osslsigncode, with and without timestamps, verify here exactly when
// osslsigncode says so.
func TestAuthenticodeInterop(t *testing.T) {
	testutil.NeedTools(t, "osslsigncode")
	w := testutil.NewWorld(t)
	trust := loadTrust(t, w)
	expired := w.PKI.Intermediate.Leaf(t, testutil.LeafOptions{NotBefore: time.Now().Add(-3 * 365 * 24 * time.Hour), NotAfter: time.Now().Add(-365 * 24 * time.Hour)})
	during := time.Now().Add(-2 * 365 * 24 * time.Hour)
	cases := []struct {
		name string
		kind string
		leaf *testutil.Leaf
		ts   time.Time
		ok   bool
	}{
		{"PE", "exe", w.PKI.Leaf, time.Time{}, true},
		{"PE timestamped", "exe", w.PKI.Leaf, time.Now().Add(-time.Minute), true},
		{"PE expired leaf, timestamp inside its validity", "exe", expired, during, true},
		{"PE expired leaf, no timestamp", "exe", expired, time.Time{}, false},
		{"MSI", "msi", w.PKI.Leaf, time.Time{}, true},
		{"MSI timestamped", "msi", w.PKI.Leaf, time.Now().Add(-time.Minute), true},
		{"MSI expired leaf, timestamp inside its validity", "msi", expired, during, true},
		{"MSI expired leaf, no timestamp", "msi", expired, time.Time{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := w.OsslSign(t, testutil.Unsigned(t, tc.kind), tc.leaf, tc.ts, "")
			res, err := trust.VerifyFile(f, signer.KindAuthenticode, nil)
			if (err == nil) != tc.ok {
				t.Fatalf("ok=%v, got %v", tc.ok, err)
			}
			if agree := w.OsslVerify(t, f); agree != tc.ok {
				t.Fatalf("osslsigncode verify says %v, we say %v (%v)", agree, tc.ok, err)
			}
			if err != nil {
				return
			}
			if res.Timestamped != !tc.ts.IsZero() || !strings.HasPrefix(res.Format, "Authenticode") {
				t.Fatalf("result %+v", res)
			}
			if !tc.ts.IsZero() && !res.CheckedAt.Equal(tc.ts.UTC().Truncate(time.Second)) {
				t.Errorf("checked at %s, want the timestamp %s", res.CheckedAt, tc.ts)
			}
		})
	}
}

// TestTimestampedCMS: an expired leaf with a trusted timestamp passes; the
// same without one fails (openssl cms -verify agrees on that one).
func TestTimestampedCMS(t *testing.T) {
	w := testutil.NewWorld(t)
	trust := loadTrust(t, w)
	expired := w.PKI.Intermediate.Leaf(t, testutil.LeafOptions{NotBefore: time.Now().Add(-3 * 365 * 24 * time.Hour), NotAfter: time.Now().Add(-365 * 24 * time.Hour)})
	content := []byte("payload")
	f, sig := w.OpensslCMS(t, content, expired, "sha256")
	if _, err := trust.VerifyDetached(bytes.NewReader(content), sig); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired, no timestamp: %v", err)
	}
	if w.OpensslVerify(t, f, sig, false) {
		t.Fatal("openssl accepts an expired signer without a timestamp; we expected agreement")
	}
	stamped := testutil.TimestampCMS(t, sig, w.TSA, time.Now().Add(-2*365*24*time.Hour))
	res, err := trust.VerifyDetached(bytes.NewReader(content), stamped)
	if err != nil || !res.Timestamped {
		t.Fatalf("expired leaf with a trusted timestamp must pass: %+v %v", res, err)
	}
	if !strings.Contains(res.Explain(), "tsa[0] leaf") || !strings.Contains(res.Explain(), "timestamp: ") {
		t.Errorf("explain does not show the timestamp authority:\n%s", res.Explain())
	}
}
