package e2e

import (
	"crypto/sha512"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/repo"
)

// editTarget changes the hashes the repository lists for target p and
// re-signs targets, snapshot and timestamp (what a publisher with other
// tooling, or an attacker holding the targets key, could publish).
func (e *env) editTarget(p string, edit func(tf *metadata.TargetFiles)) {
	e.t.Helper()
	r := e.loadRepo()
	tf, ok, err := r.Lookup(p)
	if err != nil || !ok {
		e.t.Fatalf("target %s: %v %v", p, ok, err)
	}
	edit(tf)
	files, err := r.Commit(e.keys, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	e.writeMetadata(files)
}

// The agent checks every hash a target lists while the artifact streams
// to staging, not only sha256 (TUF client workflow 5.7.3).
func TestStageChecksEveryListedHash(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sha512  func(data []byte) []byte
		wantErr bool
	}{
		{"right sha512 beside sha256", func(data []byte) []byte { s := sha512.Sum512(data); return s[:] }, false},
		{"wrong sha512 beside the right sha256", func([]byte) []byte { s := sha512.Sum512([]byte("not the artifact")); return s[:] }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			res := e.publish("1.1.0")
			data, err := os.ReadFile(filepath.Join(e.store.Dir, storageOf(res.Path, res.SHA256)))
			if err != nil {
				t.Fatal(err)
			}
			e.editTarget(res.Path, func(tf *metadata.TargetFiles) { tf.Hashes["sha512"] = tc.sha512(data) })
			if err := e.check(); err != nil {
				t.Fatal(err)
			}
			before := e.snap()
			err = e.stage()
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if err := e.apply(); err != nil || e.current() != "1.1.0" {
					t.Fatalf("apply: %v (current %s)", err, e.current())
				}
				return
			}
			if !errors.Is(err, client.ErrVerification) {
				t.Fatalf("stage: %v, want a verification failure (exit 3)", err)
			}
			if after := e.snap(); after != before || e.current() != "1.0.0" {
				t.Fatalf("a refused artifact changed install/ or state.json (current %s)", e.current())
			}
			if entries, _ := os.ReadDir(filepath.Join(e.state, "staging", component)); len(entries) != 0 {
				t.Fatalf("a refused artifact left staging/%s: %v", component, entries)
			}
		})
	}
}

// A target that lists only sha512 (here the channel pointer) is as usable
// as one with sha256: the agent fetches it by its sha512 name.
func TestSHA512OnlyTargetIsUsable(t *testing.T) {
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	e.publish("1.1.0")
	ch := repo.ChannelPath(component, platform, "stable")
	r := e.loadRepo()
	tf, _, err := r.Lookup(ch)
	if err != nil {
		t.Fatal(err)
	}
	ptr, err := os.ReadFile(filepath.Join(e.store.Dir, storageOf(ch, hexOf(tf.Hashes["sha256"]))))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(ptr)
	e.editTarget(ch, func(tf *metadata.TargetFiles) { tf.Hashes = metadata.Hashes{"sha512": sum[:]} })
	// Served only under its sha512 consistent-snapshot name.
	os.Remove(filepath.Join(e.store.Dir, storageOf(ch, hexOf(tf.Hashes["sha256"]))))
	if err := os.WriteFile(filepath.Join(e.store.Dir, storageOf(ch, hexOf(sum[:]))), ptr, 0o644); err != nil {
		t.Fatal(err)
	}
	takeRequests()
	e.mustInstall("1.1.0")
	want := "/" + storageOf(ch, hexOf(sum[:]))
	found := false
	for _, p := range takeRequests() {
		found = found || p == want
	}
	if !found {
		t.Fatalf("the pointer was not fetched as %s", want)
	}
}
