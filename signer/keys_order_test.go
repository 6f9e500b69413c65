package signer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/signer"
)

// TestLoadPrivateKeySaysWhatTheFileHoldsFirst: a .pub given for a private
// key is told so, not to chmod it; an open private key is still refused.
func TestLoadPrivateKeySaysWhatTheFileHoldsFirst(t *testing.T) {
	dir := t.TempDir()
	key, err := signer.GenerateKey(signer.KeyTypeEd25519)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub := filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	if err := signer.WriteKeyPair(priv, pub, key); err != nil {
		t.Fatal(err)
	}
	os.Chmod(pub, 0o644)
	if _, err := signer.LoadPrivateKey(pub); err == nil || strings.Contains(err.Error(), "chmod") || !strings.Contains(err.Error(), "public key") {
		t.Fatalf("a .pub as a private key: %v", err)
	}
	os.Chmod(priv, 0o644)
	if _, err := signer.LoadPrivateKey(priv); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("an open private key: %v", err)
	}
}
