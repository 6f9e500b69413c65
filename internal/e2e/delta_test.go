package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

// TestDeltaUpdates: the agent builds a release from a bsdiff patch when its
// cached base matches byte for byte, and falls back to the full artifact
// when the patch is corrupt or missing or the base differs; the result is
// verified the same way in every case.
func TestDeltaUpdates(t *testing.T) {
	testutil.NeedTools(t, "bsdiff")
	base := make([]byte, 512<<10)
	rand.Read(base)
	change := func(v string) []byte {
		b := bytes.Clone(base)
		copy(b[1000:], "version "+v)
		return b
	}
	fileKind := func(from ...string) func(o *publisher.ReleaseOptions) {
		return func(o *publisher.ReleaseOptions) { o.Install = "file"; o.DeltaFrom = from }
	}
	name := func(v string) string { return "nc-" + v + ".bin" }
	cases := []struct {
		name     string
		break_   func(t *testing.T, e *env, patch repo.Target)
		viaPatch bool
	}{
		{"patch applies", nil, true},
		{"corrupt patch", func(t *testing.T, e *env, p repo.Target) {
			os.WriteFile(filepath.Join(e.store.Dir, "targets", filepath.FromSlash(p.StorageName())), []byte("BSDIFF40 garbage"), 0o644)
		}, false},
		{"missing patch", func(t *testing.T, e *env, p repo.Target) {
			os.Remove(filepath.Join(e.store.Dir, "targets", filepath.FromSlash(p.StorageName())))
		}, false},
		{"base differs", func(t *testing.T, e *env, p repo.Target) {
			f := filepath.Join(e.state, "cache", component, "artifact")
			b, _ := os.ReadFile(f)
			os.Remove(f) // the cache is a link to the installed file: replace, do not edit
			b[0] ^= 1
			os.WriteFile(f, b, 0o600)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.publishWith("1.0.0", name("1.0.0"), change("1.0.0"), fileKind())
			e.mustInstall("1.0.0")
			newer := change("1.1.0")
			res := e.publishWith("1.1.0", name("1.1.0"), newer, fileKind("1.0.0"))
			r := e.loadRepo()
			tf, _, _ := r.Lookup(res.Path)
			meta, _ := repo.ParseRelease(tf.Custom)
			if len(meta.Deltas) != 1 {
				t.Fatalf("no delta in the metadata: %+v", meta)
			}
			ptf, ok, _ := r.Lookup(meta.Deltas[0].Patch)
			if !ok {
				t.Fatal("patch target missing")
			}
			patch := repo.Target{Path: meta.Deltas[0].Patch, SHA256: strings.TrimSpace(hexOf(ptf.Hashes["sha256"])), Length: ptf.Length}
			if ptf.Length*10 > int64(len(newer)) {
				t.Errorf("patch is %d bytes for a %d-byte artifact", ptf.Length, len(newer))
			}
			if tc.break_ != nil {
				tc.break_(t, e, patch)
			}
			takeRequests()
			e.mustInstall("1.1.0")
			got, _ := os.ReadFile(filepath.Join(e.install, component, "current", name("1.1.0")))
			if !bytes.Equal(got, newer) {
				t.Fatal("installed bytes differ from the release")
			}
			reqs := takeRequests()
			fetchedFull := slices.ContainsFunc(reqs, func(p string) bool { return strings.HasSuffix(p, "."+name("1.1.0")) })
			if fetchedFull == tc.viaPatch {
				t.Fatalf("full artifact fetched: %v (want %v); requests %v", fetchedFull, !tc.viaPatch, reqs)
			}
		})
	}
}
