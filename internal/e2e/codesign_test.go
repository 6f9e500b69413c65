package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

func signDetachedAny(content []byte, chain []*x509.Certificate, key any) []byte {
	sig, err := signer.SignDetached(bytes.NewReader(content), chain, key.(crypto.Signer))
	if err != nil {
		panic(err)
	}
	return sig
}

// TestBadCodeSignaturesEndToEnd: every bad case of the code-signing table
// is refused by bcpublish (the repository is left byte for byte as it was)
// and, published anyway by someone holding the TUF keys, by the agent
// (nothing staged, nothing installed, state unchanged).
func TestBadCodeSignaturesEndToEnd(t *testing.T) {
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	for i, bc := range e.world.BadCases(signDetachedAny) {
		t.Run(bc.Name, func(t *testing.T) {
			s := bc.Make(t)
			version := fmt.Sprintf("1.1.%d", i)
			ext := ".tar.gz"
			if s.Kind == signer.KindAuthenticode {
				ext = filepath.Ext(s.File)
			}
			name := "notification-client-" + version + ext
			data, err := os.ReadFile(s.File)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), name)
			os.WriteFile(file, data, 0o644)
			if s.Sig != nil {
				os.WriteFile(file+".p7s", s.Sig, 0o644)
			}

			before := testutil.HashTree(t, e.store.Dir)
			trust, err := signer.LoadTrust(e.world.TrustDir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = publisher.AddRelease(context.Background(), e.store, e.keys, trust, publisher.ReleaseOptions{
				Component: component, Version: version, Platform: platform, File: file}, nil)
			if !errors.Is(err, signer.ErrVerification) || !strings.Contains(err.Error(), bc.Want) {
				t.Fatalf("bcpublish: want a refusal naming %q, got %v", bc.Want, err)
			}
			if testutil.HashTree(t, e.store.Dir) != before {
				t.Fatal("bcpublish changed the repository while refusing")
			}

			e.publishRaw(rawRelease{version: version, artifact: data, sig: s.Sig, file: name, codesign: s.Kind})
			if err := e.check(); err != nil {
				t.Fatal(err)
			}
			snap := e.snap()
			err = e.stage()
			if !errors.Is(err, client.ErrVerification) || !strings.Contains(err.Error(), bc.Want) {
				t.Fatalf("agent: want a refusal naming %q, got %v", bc.Want, err)
			}
			if e.snap() != snap || e.current() != "1.0.0" {
				t.Fatal("the agent's refusal changed install/, current or state.json")
			}
			if entries, _ := os.ReadDir(filepath.Join(e.state, "staging", component)); len(entries) != 0 {
				t.Fatalf("something was left staged: %v", entries)
			}
		})
	}
}

// TestAuthenticodeRelease: a signed PE and a signed MSI, published and
// installed end to end, with a CRL published through the repository.
func TestAuthenticodeRelease(t *testing.T) {
	testutil.NeedTools(t, "osslsigncode")
	e := newEnv(t)
	now := time.Now()
	crl := filepath.Join(t.TempDir(), "example-ca.crl")
	os.WriteFile(crl, e.pki.Intermediate.CRL(t, now.Add(-time.Hour), now.Add(7*24*time.Hour)), 0o644)
	if p, _, err := publisher.AddCRL(context.Background(), e.store, e.keys, crl, "", now); err != nil || p != "trust/crl/example-ca.crl" {
		t.Fatalf("add-crl: %s %v", p, err)
	}
	for i, kind := range []string{"exe", "msi"} {
		if kind == "msi" {
			testutil.NeedTools(t, "wixl")
		}
		version := fmt.Sprintf("2.0.%d", i)
		signed := e.world.OsslSign(t, testutil.Unsigned(t, kind), e.pki.Leaf, now.Add(-time.Minute), "")
		file := filepath.Join(t.TempDir(), "notification-client-setup."+kind)
		data, _ := os.ReadFile(signed)
		os.WriteFile(file, data, 0o644)
		trust, _ := signer.LoadTrust(e.world.TrustDir)
		res, err := publisher.AddRelease(context.Background(), e.store, e.keys, trust, publisher.ReleaseOptions{
			Component: component, Version: version, Platform: platform, File: file}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := e.loadRepo().Lookup(res.Path + ".p7s"); ok {
			t.Fatal("an Authenticode release must not get a .p7s")
		}
		e.mustInstall(version)
		got, _ := os.ReadFile(filepath.Join(e.install, component, "current", filepath.Base(file)))
		if !bytes.Equal(got, data) {
			t.Fatal("installed file differs")
		}
	}
	if _, err := os.Stat(filepath.Join(e.state, "tuf", "crl", "example-ca.crl")); err != nil {
		t.Fatalf("the repository CRL was not fetched: %v", err)
	}
	// Revoking the signer through the repository stops the next release.
	revoked := filepath.Join(t.TempDir(), "example-ca.crl")
	os.WriteFile(revoked, e.pki.Intermediate.CRL(t, now, now.Add(7*24*time.Hour), testutil.RevokedCert{Cert: e.pki.Leaf.Cert, At: now.Add(-time.Hour), Reason: 1}), 0o644)
	if _, _, err := publisher.AddCRL(context.Background(), e.store, e.keys, revoked, "", now); err != nil {
		t.Fatal(err)
	}
	signed := e.world.OsslSign(t, testutil.Unsigned(t, "exe"), e.pki.Leaf, now.Add(-time.Minute), "")
	data, _ := os.ReadFile(signed)
	e.publishRaw(rawRelease{version: "3.0.0", artifact: data, file: "nc.exe", codesign: repo.CodesignAuthenticode})
	e.check()
	if err := e.stage(); !errors.Is(err, client.ErrVerification) || !strings.Contains(err.Error(), "keyCompromise") {
		t.Fatalf("a release by a revoked signer must be refused, got %v", err)
	}
}
