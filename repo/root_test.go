package repo_test

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/beckmanconnect/bcupdate/repo"
)

func pubKey(t *testing.T, s signature.Signer) (*metadata.Key, string) {
	t.Helper()
	pub, err := s.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.ID()
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

// TestPublishRootEveryRole: replacing the keys of each role (and of all at
// once) in a flat and a hashed-bin repository leaves a repository that
// loads and verifies (every bin included) and takes new releases; a new
// targets key re-signs targets.json and every bin, whose delegation lists
// the new key only.
func TestPublishRootEveryRole(t *testing.T) {
	for _, bins := range []int{0, 4} {
		for _, roles := range [][]string{{repo.RoleRoot}, {repo.RoleTargets}, {repo.RoleSnapshot}, {repo.RoleTimestamp}, repo.TopLevelRoles} {
			t.Run(fmt.Sprintf("bins=%d/%v", bins, roles), func(t *testing.T) {
				now := time.Now()
				keys := newKeys(t)
				r, rootFile, err := repo.NewBins(keys, now, bins)
				if err != nil {
					t.Fatal(err)
				}
				m := memRepo{}
				m.write([]repo.File{rootFile})
				for i := 0; i < 8; i++ {
					if err := r.Set(repo.NewTarget(fmt.Sprintf("nc/linux-amd64/1.0.%d/nc.tar.gz", i), []byte{byte(i)}, nil)); err != nil {
						t.Fatal(err)
					}
				}
				files, err := r.Commit(keys, now)
				if err != nil {
					t.Fatal(err)
				}
				m.write(files)

				r, err = repo.Load(m.read)
				if err != nil {
					t.Fatal(err)
				}
				next, err := r.NextRoot(now)
				if err != nil {
					t.Fatal(err)
				}
				fresh := newKeys(t)
				newKeys := repo.Keys{}
				for role, k := range keys {
					newKeys[role] = k
				}
				for _, role := range roles {
					add, _ := pubKey(t, fresh[role][0])
					_, old := pubKey(t, keys[role][0])
					if err := repo.EditRoot(next, repo.RootEdit{Role: role, Add: []*metadata.Key{add}, Remove: []string{old}}); err != nil {
						t.Fatal(err)
					}
					newKeys[role] = fresh[role]
				}
				for _, s := range append(keys[repo.RoleRoot], newKeys[repo.RoleRoot]...) {
					if _, err := repo.SignRoot(next, s); err != nil {
						t.Fatal(err)
					}
				}
				files, err = r.PublishRoot(next, newKeys, now)
				if err != nil {
					t.Fatal(err)
				}
				m.write(files)

				loaded, err := repo.Load(m.read)
				if err != nil {
					t.Fatalf("the repository after the rotation: %v", err)
				}
				all, err := loaded.AllTargets()
				if err != nil || len(all) != 8 {
					t.Fatalf("targets after the rotation: %d %v", len(all), err)
				}
				if bins > 0 {
					_, want := pubKey(t, newKeys[repo.RoleTargets][0])
					sr := loaded.Targets.Signed.Delegations.SuccinctRoles
					if len(sr.KeyIDs) != 1 || sr.KeyIDs[0] != want || len(loaded.Targets.Signed.Delegations.Keys) != 1 {
						t.Fatalf("bins delegation keys %v, want only %s", sr.KeyIDs, want)
					}
				}
				// A release after the rotation, with the new keys only.
				if err := loaded.Set(repo.NewTarget("nc/linux-amd64/2.0.0/nc.tar.gz", []byte("two"), nil)); err != nil {
					t.Fatal(err)
				}
				files, err = loaded.Commit(newKeys, now)
				if err != nil {
					t.Fatalf("a release after the rotation: %v", err)
				}
				m.write(files)
				again, err := repo.Load(m.read)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok, err := again.Lookup("nc/linux-amd64/2.0.0/nc.tar.gz"); !ok || err != nil {
					t.Fatalf("the new release: %v %v", ok, err)
				}
			})
		}
	}
}

// TestRepairStaleTargets: a repository left half-rotated (a root with a
// new targets key published, targets and bins still signed with the old
// one, as older bcpublish releases left hashed-bin repositories) is refused
// by Load with a hint, accepted by LoadStaleTargets, and whole again after
// a Commit with the new key. A targets.json signed by a key no root ever
// listed stays refused.
func TestRepairStaleTargets(t *testing.T) {
	now := time.Now()
	keys := newKeys(t)
	r, rootFile, err := repo.NewBins(keys, now, 4)
	if err != nil {
		t.Fatal(err)
	}
	m := memRepo{}
	m.write([]repo.File{rootFile})
	r.Set(repo.NewTarget("nc/linux-amd64/1.0.0/nc.tar.gz", []byte("one"), nil))
	files, err := r.Commit(keys, now)
	if err != nil {
		t.Fatal(err)
	}
	m.write(files)
	next, _ := r.NextRoot(now)
	fresh := newKeys(t)
	add, _ := pubKey(t, fresh[repo.RoleTargets][0])
	_, old := pubKey(t, keys[repo.RoleTargets][0])
	if err := repo.EditRoot(next, repo.RootEdit{Role: repo.RoleTargets, Add: []*metadata.Key{add}, Remove: []string{old}}); err != nil {
		t.Fatal(err)
	}
	repo.SignRoot(next, keys[repo.RoleRoot][0])
	b, _ := next.ToBytes(true)
	m.write([]repo.File{{Name: "2.root.json", Data: b}}) // and nothing re-signed

	if _, err := repo.Load(m.read); err == nil || !strings.Contains(err.Error(), "bcpublish refresh --targets") {
		t.Fatalf("Load of a half-rotated repository: %v", err)
	}
	stale, err := repo.LoadStaleTargets(m.read)
	if err != nil {
		t.Fatal(err)
	}
	rekeyed := repo.Keys{repo.RoleTargets: fresh[repo.RoleTargets], repo.RoleSnapshot: keys[repo.RoleSnapshot], repo.RoleTimestamp: keys[repo.RoleTimestamp]}
	if _, err := stale.Commit(keys, now); err == nil {
		t.Fatal("the repair was signed with the old targets key")
	}
	stale, _ = repo.LoadStaleTargets(m.read)
	files, err = stale.Commit(rekeyed, now)
	if err != nil {
		t.Fatal(err)
	}
	m.write(files)
	whole, err := repo.Load(m.read)
	if err != nil {
		t.Fatalf("after the repair: %v", err)
	}
	if all, err := whole.AllTargets(); err != nil || len(all) != 1 {
		t.Fatalf("targets after the repair: %v %v", all, err)
	}

	// A targets.json signed by a stranger's key, pinned by a valid
	// snapshot, is no stale signature: still refused.
	stranger := newKeys(t)[repo.RoleTargets][0]
	tg := whole.Targets
	tg.Signed.Version = 100
	tg.ClearSignatures()
	tg.Sign(stranger)
	tb, _ := tg.ToBytes(true)
	sn := whole.Snapshot
	sn.Signed.Meta["targets.json"] = metaFileOf(100, tb)
	sn.Signed.Version = 100
	sn.ClearSignatures()
	sn.Sign(keys[repo.RoleSnapshot][0])
	sb, _ := sn.ToBytes(true)
	ts := whole.Timestamp
	ts.Signed.Meta["snapshot.json"] = metaFileOf(100, sb)
	ts.Signed.Version = 100
	ts.ClearSignatures()
	ts.Sign(keys[repo.RoleTimestamp][0])
	tsb, _ := ts.ToBytes(true)
	m.write([]repo.File{{Name: "100.targets.json", Data: tb}, {Name: "100.snapshot.json", Data: sb}, {Name: "timestamp.json", Data: tsb}})
	if _, err := repo.LoadStaleTargets(m.read); err == nil || !strings.Contains(err.Error(), "100.targets.json") {
		t.Fatalf("a targets.json signed by an unknown key: %v", err)
	}
}

func metaFileOf(version int64, data []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(data)
	mf := metadata.MetaFile(version)
	mf.Length = int64(len(data))
	mf.Hashes = metadata.Hashes{"sha256": sum[:]}
	return mf
}
