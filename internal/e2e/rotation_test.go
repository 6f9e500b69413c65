package e2e

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// newKey makes a role key and writes its public half for --add-key.
func newKey(t *testing.T, dir, name string) (signature.Signer, string) {
	t.Helper()
	k, err := signer.GenerateKey(signer.KeyTypeEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, name+".pub")
	if err := signer.WriteKeyPair(filepath.Join(dir, name+".key"), pub, k); err != nil {
		t.Fatal(err)
	}
	s, err := signer.RoleSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
}

func keyIDOf(t *testing.T, s signature.Signer) string {
	t.Helper()
	pub, _ := s.PublicKey()
	k, err := publisher.LoadPublicKeyRef(context.Background(), writePub(t, pub))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := repo.KeyID(k)
	return id
}

func writePub(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k.pub")
	b, err := cryptoutilsMarshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, b, 0o644)
	return p
}

// TestRootRotations: a 2-of-3 root, three rotations (root keys, the
// timestamp key, the targets key), agents that started at root 1 follow
// all of them, and a rotated-out timestamp key signs nothing they accept.
func TestRootRotations(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	kdir := t.TempDir()
	root1 := e.keys[repo.RoleRoot][0]
	root2, root2pub := newKey(t, kdir, "root2")
	root3, root3pub := newKey(t, kdir, "root3")
	staged := filepath.Join(t.TempDir(), "root.json")

	// Rotation 1: a 2-of-3 root. Refused with one signature, accepted with two.
	if _, err := publisher.StageRoot(ctx, e.store, "", publisher.RootChange{Role: "root", Add: []string{root2pub, root3pub}, Threshold: 2}, staged, time.Now()); err != nil {
		t.Fatal(err)
	}
	publisher.SignRootFile(staged, root1)
	before := e.snapRepo(t)
	_, err := publisher.PublishRoot(ctx, e.store, staged, nil, time.Now())
	if !errors.Is(err, repo.ErrVerification) || !strings.Contains(err.Error(), "1 of 2 signatures required by the new root (v2) itself") {
		t.Fatalf("one signature must be refused, naming what is missing: %v", err)
	}
	if e.snapRepo(t) != before {
		t.Fatal("a refused root publish changed the repository")
	}
	publisher.SignRootFile(staged, root2)
	if _, err := publisher.PublishRoot(ctx, e.store, staged, nil, time.Now()); err != nil {
		t.Fatal(err)
	}

	// Rotation 2: replace the (compromised) timestamp key. Needs 2 of 3.
	oldTS := e.keys[repo.RoleTimestamp][0]
	newTS, newTSpub := newKey(t, kdir, "timestamp2")
	if _, err := publisher.StageRoot(ctx, e.store, "", publisher.RootChange{Role: "timestamp", Add: []string{newTSpub}, Remove: []string{keyIDOf(t, oldTS)}}, staged, time.Now()); err != nil {
		t.Fatal(err)
	}
	publisher.SignRootFile(staged, root3)
	e.keys[repo.RoleTimestamp] = []signature.Signer{newTS}
	if _, err := publisher.PublishRoot(ctx, e.store, staged, e.keys, time.Now()); err == nil || !strings.Contains(err.Error(), "1 of 2 signatures required by the current root (v2)") {
		t.Fatalf("one signature of a 2-of-3 root must be refused: %v", err)
	}
	publisher.SignRootFile(staged, root2)
	if _, err := publisher.PublishRoot(ctx, e.store, staged, e.keys, time.Now()); err != nil {
		t.Fatal(err)
	}

	// Rotation 3: a new targets key, in one step.
	newTargets, newTargetsPub := newKey(t, kdir, "targets2")
	keys := repo.Keys{repo.RoleTargets: {newTargets}, repo.RoleSnapshot: e.keys[repo.RoleSnapshot], repo.RoleTimestamp: {newTS}}
	if _, err := publisher.RotateRoot(ctx, e.store, publisher.RootChange{Role: "targets", Add: []string{newTargetsPub}, Remove: []string{keyIDOf(t, e.keys[repo.RoleTargets][0])}},
		[]signature.Signer{root2, root3}, keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.keys = repo.Keys{repo.RoleRoot: {root2, root3}, repo.RoleTargets: {newTargets}, repo.RoleSnapshot: e.keys[repo.RoleSnapshot], repo.RoleTimestamp: {newTS}}
	if got := e.loadRepo().Root.Signed.Version; got != 4 {
		t.Fatalf("root is v%d after three rotations", got)
	}

	// The agent that trusted root 1 follows all three and installs.
	e.publish("1.1.0")
	e.mustInstall("1.1.0")
	// So does a new agent shipped with root 1.
	other := e.secondAgent(t, "INST-7777")
	other.mustInstall("1.1.0")

	// An attacker with the rotated-out timestamp key signs a fresh timestamp.
	r := e.loadRepo()
	r.Timestamp.Signed.Version += 100
	r.Timestamp.Signed.Expires = time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	r.Timestamp.ClearSignatures()
	r.Timestamp.Sign(oldTS)
	b, _ := r.Timestamp.ToBytes(true)
	os.WriteFile(filepath.Join(e.store.Dir, "metadata", "timestamp.json"), b, 0o644)
	if err := other.check(); !errors.Is(err, client.ErrVerification) {
		t.Fatalf("a timestamp signed by a rotated-out key must be refused, got %v", err)
	}
}

func (e *env) snapRepo(t *testing.T) string {
	t.Helper()
	return hashTree(t, e.store.Dir)
}
