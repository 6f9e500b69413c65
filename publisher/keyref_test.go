package publisher_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/sigstore/sigstore/pkg/signature/kms/fake" // fakekms:// for tests

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

func TestKeyReferences(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := publisher.GenerateKeys(dir, signer.KeyTypeECDSAP256); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{filepath.Join(dir, "targets.key"), "file://" + filepath.Join(dir, "targets.key"), "fakekms://bcupdate-test"} {
		s, err := publisher.LoadSignerRef(ctx, ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if sig, err := s.SignMessage(strings.NewReader("x")); err != nil || len(sig) == 0 {
			t.Fatalf("%s cannot sign: %v", ref, err)
		}
		if _, err := publisher.LoadPublicKeyRef(ctx, ref); err != nil {
			t.Fatalf("%s: no public key: %v", ref, err)
		}
	}
	if _, err := publisher.LoadSignerRef(ctx, "nosuchkms://key"); err == nil {
		t.Error("an unknown KMS scheme must fail")
	}
	// Per-role references override --keys.
	keys, err := publisher.LoadKeysRefs(ctx, dir, publisher.KeyRefs{repo.RoleTimestamp: {"fakekms://ts"}}, repo.RoleTargets, repo.RoleTimestamp)
	if err != nil || len(keys[repo.RoleTargets]) != 1 || len(keys[repo.RoleTimestamp]) != 1 {
		t.Fatalf("%v %v", keys, err)
	}
	if _, err := publisher.LoadKeysRefs(ctx, "", nil, repo.RoleTargets); err == nil {
		t.Error("no --keys and no reference must fail")
	}
}
