package signer_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/signer"
)

// TestBadCases: each case is refused with a one-line message naming the
// reason. Cases marked Agree are refused by osslsigncode / openssl too; the
// others name the rule by which we are stricter (or follow Windows).
func TestBadCases(t *testing.T) {
	w := testutil.NewWorld(t)
	cases := w.BadCases(signDetached)
	if len(cases) < 16 {
		t.Fatalf("the issue asks for at least 16 bad cases, have %d", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			s := tc.Make(t)
			_, err := loadTrust(t, w).VerifyFile(s.File, s.Kind, s.Sig)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, signer.ErrVerification) {
				t.Errorf("not a verification error: %v", err)
			}
			if !strings.Contains(err.Error(), tc.Want) {
				t.Errorf("message does not name the reason %q:\n%v", tc.Want, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
			if !tc.Agree {
				t.Logf("stricter than osslsigncode/openssl by rule: %s", tc.Rule)
				return
			}
			var theyAccept bool
			if s.Kind == signer.KindAuthenticode {
				theyAccept = w.OsslVerify(t, s.File)
			} else {
				theyAccept = w.OpensslVerify(t, s.File, s.Sig, strings.Contains(tc.Name, "revoked"))
			}
			if theyAccept {
				t.Errorf("osslsigncode/openssl accept what we refuse, but this case claims agreement")
			}
		})
	}
}

// TestRevokedAfterTimestampIsAccepted: Windows' rule, where OpenSSL differs:
// a revocation (not keyCompromise) after the trusted timestamp does not
// invalidate the signature.
func TestRevokedAfterTimestampIsAccepted(t *testing.T) {
	w := testutil.NewWorld(t)
	now := time.Now()
	leaf := w.PKI.Intermediate.Leaf(t, testutil.LeafOptions{})
	w.SetCRL(t, w.PKI.Intermediate.CRL(t, now.Add(-time.Hour), now.Add(7*24*time.Hour), testutil.RevokedCert{Cert: leaf.Cert, At: now.Add(-10 * time.Minute), Reason: 4}))
	content := []byte("x")
	sig := signDetached(content, leaf.Chain, leaf.Key)
	stamped := testutil.TimestampCMS(t, sig, w.TSA, now.Add(-30*time.Minute))
	res, err := loadTrust(t, w).VerifyDetached(bytes.NewReader(content), stamped)
	if err != nil {
		t.Fatalf("rule (Windows): a signature timestamped before a non-keyCompromise revocation stays valid; got %v", err)
	}
	if !strings.Contains(strings.Join(res.Revocation, "\n"), "after the trusted timestamp") {
		t.Errorf("revocation decision not explained: %v", res.Revocation)
	}
	f := filepath.Join(t.TempDir(), "x")
	os.WriteFile(f, content, 0o644)
	if w.OpensslVerify(t, f, stamped, true) {
		t.Log("openssl agrees here")
	} else {
		t.Log("openssl refuses it: it ignores timestamps; we follow Windows")
	}
	// Without the timestamp the same revocation refuses it.
	if _, err := loadTrust(t, w).VerifyDetached(bytes.NewReader(content), sig); err == nil {
		t.Fatal("a revoked signer without timestamp was accepted")
	}
}

// TestRepositoryCRL: CRLs handed in with WithCRLs (the repository's
// trust/crl/ targets) count like local ones.
func TestRepositoryCRL(t *testing.T) {
	w := testutil.NewWorld(t)
	now := time.Now()
	leaf := w.PKI.Intermediate.Leaf(t, testutil.LeafOptions{})
	content := []byte("x")
	sig := signDetached(content, leaf.Chain, leaf.Key)
	base := loadTrust(t, w)
	if _, err := base.VerifyDetached(bytes.NewReader(content), sig); err != nil {
		t.Fatal(err)
	}
	withCRL, err := base.WithCRLs(map[string][]byte{"trust/crl/ca.crl": w.PKI.Intermediate.CRL(t, now.Add(-time.Hour), now.Add(time.Hour), testutil.RevokedCert{Cert: leaf.Cert, At: now.Add(-time.Minute), Reason: 0})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := withCRL.VerifyDetached(bytes.NewReader(content), sig); err == nil || !strings.Contains(err.Error(), "trust/crl/ca.crl") {
		t.Fatalf("want a refusal naming the repository CRL, got %v", err)
	}
}

func TestNoTSARootsIgnoresTimestamps(t *testing.T) {
	w := testutil.NewWorld(t)
	os.RemoveAll(filepath.Join(w.TrustDir, "tsa-roots"))
	content := []byte("x")
	sig := testutil.TimestampCMS(t, signDetached(content, w.PKI.Leaf.Chain, w.PKI.Leaf.Key), testutil.NewTSA(t, "Any TSA"), time.Now())
	res, err := loadTrust(t, w).VerifyDetached(bytes.NewReader(content), sig)
	if err != nil || res.Timestamped || len(res.Notes) == 0 {
		t.Fatalf("without tsa-roots a timestamp is ignored, and said so: %+v %v", res, err)
	}
}
