package fleet

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKEK(t *testing.T) (KEK, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kek")
	if err := GenerateKEK(p); err != nil {
		t.Fatal(err)
	}
	k, err := OpenKEK("file://" + p)
	if err != nil {
		t.Fatal(err)
	}
	return k, p
}

func TestSealOpen(t *testing.T) {
	k, _ := testKEK(t)
	other, _ := testKEK(t)
	plain := []byte(`{"email":"ann.lee@hospital.example","name":"Ann Lee"}`)
	sealed, err := Seal(k, "dev-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("ann.lee")) || bytes.Contains(sealed, []byte("Ann Lee")) {
		t.Fatal("plaintext in the sealed record")
	}
	again, _ := Seal(k, "dev-1", plain)
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same record are equal: no fresh data key or nonce")
	}
	got, err := Open(k, "dev-1", sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q, %v", got, err)
	}
	if _, err := Open(k, "dev-2", sealed); err == nil {
		t.Fatal("a record opened for another owner")
	}
	if _, err := Open(other, "dev-1", sealed); err == nil || !strings.Contains(err.Error(), "not "+other.ID()) {
		t.Fatalf("another KEK: %v", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := Open(k, "dev-1", bad); err == nil {
			t.Fatalf("a record changed at byte %d opened", i)
		}
	}
	if _, err := Open(k, "dev-1", sealed[:len(sealed)-1]); err == nil {
		t.Fatal("a truncated record opened")
	}
}

func TestEmailHash(t *testing.T) {
	k, _ := testKEK(t)
	other, _ := testKEK(t)
	if !bytes.Equal(EmailHash(k, " Ann.Lee@Hospital.example"), EmailHash(k, "ann.lee@hospital.example")) {
		t.Fatal("case or spaces change the hash")
	}
	if bytes.Equal(EmailHash(k, "a@b"), EmailHash(other, "a@b")) {
		t.Fatal("the hash does not depend on the key")
	}
}

func TestKEKFile(t *testing.T) {
	_, p := testKEK(t)
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", fi.Mode().Perm())
	}
	if err := GenerateKEK(p); err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Fatalf("overwrite: %v", err)
	}
	os.Chmod(p, 0o644)
	if _, err := OpenKEK(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("open mode 644: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("hello"), 0o600)
	if _, err := OpenKEK(bad); err == nil || !strings.Contains(err.Error(), "not a key-encryption key") {
		t.Fatalf("not a KEK: %v", err)
	}
	if _, err := OpenKEK("ftp://kek.example/kek"); err == nil || !strings.Contains(err.Error(), "want file://PATH or awskms:///") {
		t.Fatalf("another scheme: %v", err)
	}
	if _, err := OpenKEK("awskms:///alias/bcfleet"); err == nil || !strings.Contains(err.Error(), "OpenKEKWithStore") {
		t.Fatalf("kms without a store: %v", err)
	}
	if _, err := OpenKEK(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "bcfleet kek generate") {
		t.Fatalf("missing: %v", err)
	}
}
