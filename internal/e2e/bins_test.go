package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func metadataFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "metadata"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestHashedBins: with bins, release add re-signs only the bins it
// touches (plus snapshot and timestamp), the agent fetches only the bins
// its targets live in, and a target placed in another bin is refused.
func TestHashedBins(t *testing.T) {
	e := newEnvBins(t, 16, nil)
	if n := len(metadataFiles(t, e.store.Dir)); n != 16+4 {
		t.Fatalf("a 16-bin repository starts with %d metadata files", n)
	}
	e.publish("1.0.0")
	e.mustInstall("1.0.0")

	before := metadataFiles(t, e.store.Dir)
	res := e.publish("1.1.0")
	var added []string
	for _, f := range metadataFiles(t, e.store.Dir) {
		if !slices.Contains(before, f) {
			added = append(added, f)
		}
	}
	r := e.loadRepo()
	want := map[string]bool{}
	for _, p := range []string{res.Path, res.Path + ".p7s", repo.ChannelPath(component, platform, "stable"), repo.ReleasesPath(component, platform)} {
		want[r.BinFor(p)] = true
	}
	for _, f := range added {
		switch {
		case strings.HasSuffix(f, ".snapshot.json"), f == "timestamp.json":
		case strings.Contains(f, ".bins-"):
			if !want[strings.TrimSuffix(f[strings.Index(f, ".")+1:], ".json")] {
				t.Errorf("release add re-signed an unrelated bin: %s", f)
			}
		default:
			t.Errorf("release add re-signed %s", f)
		}
	}
	if len(added) > len(want)+1 {
		t.Errorf("release add wrote %v", added)
	}

	takeRequests()
	e.mustInstall("1.1.0")
	for _, p := range takeRequests() {
		if i := strings.Index(p, ".bins-"); i >= 0 {
			name := strings.TrimSuffix(p[i+1:], ".json")
			if !want[name] {
				t.Errorf("the agent fetched %s, which holds none of its targets", p)
			}
		}
	}

	// A bin that holds a target belonging to another bin is refused.
	r = e.loadRepo()
	art := r.BinFor(res.Path)
	var wrong string
	for i := 0; i < 16 && wrong == ""; i++ {
		if name := r.BinFor(strings.Repeat("x", i+1)); name != art {
			wrong = name
		}
	}
	e.publish("1.2.0")
	r = e.loadRepo()
	p2 := repo.ArtifactPath(component, platform, "1.2.0", artifactName("1.2.0"))
	tf, ok, err := r.Lookup(p2)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	right := r.BinFor(p2)
	if wrong == right {
		for i := 0; wrong == right; i++ {
			wrong = r.BinFor(strings.Repeat("y", i+1))
		}
	}
	moveToBin(t, e, r, p2, tf, right, wrong)
	e.check() // the pointer names 1.2.0; its bin no longer has it
	if err := e.stage(); err == nil {
		t.Fatal("a target placed in another bin was accepted")
	} else if !strings.Contains(err.Error(), "not found") && !strings.Contains(err.Error(), "verification") {
		t.Fatalf("unexpected error: %v", err)
	}
	if e.current() != "1.1.0" {
		t.Fatal("current moved")
	}
	st := e.status()
	if st.Components[0].State == client.StateStaged {
		t.Fatal("staged a target from the wrong bin")
	}
}

// moveToBin re-signs the repository with a target moved from its bin to
// another (what a confused or malicious publisher could do), working on the
// signed files as such a publisher would: repo's API refuses to misplace a
// target.
func moveToBin(t *testing.T, e *env, r *repo.Repo, p string, tf any, from, to string) {
	t.Helper()
	now := time.Now()
	read := func(name string) *metadata.Metadata[metadata.TargetsType] {
		mf := r.Snapshot.Signed.Meta[name+".json"]
		if mf == nil {
			t.Fatalf("the snapshot does not list %s.json", name)
		}
		data, err := os.ReadFile(filepath.Join(e.store.Dir, "metadata", fmt.Sprintf("%d.%s.json", mf.Version, name)))
		if err != nil {
			t.Fatal(err)
		}
		md, err := metadata.Targets().FromBytes(data)
		if err != nil {
			t.Fatal(err)
		}
		return md
	}
	a, b := read(from), read(to)
	moved, ok := a.Signed.Targets[p]
	if !ok {
		t.Fatalf("%s is not in %s", p, from)
	}
	delete(a.Signed.Targets, p)
	b.Signed.Targets[p] = moved
	var files []repo.File
	for _, bin := range []struct {
		name string
		md   *metadata.Metadata[metadata.TargetsType]
	}{{from, a}, {to, b}} {
		bin.md.Signed.Version++
		bin.md.Signed.Expires = now.UTC().Add(90 * 24 * time.Hour).Truncate(time.Second)
		bin.md.ClearSignatures()
		for _, s := range e.keys[repo.RoleTargets] {
			if _, err := bin.md.Sign(s); err != nil {
				t.Fatal(err)
			}
		}
		// The bin must verify, so that the agent refuses it for the
		// misplacement and not for a bad signature.
		if err := r.Targets.VerifyDelegate(bin.name, bin.md); err != nil {
			t.Fatalf("re-signed %s does not verify: %v", bin.name, err)
		}
		data, err := bin.md.ToBytes(false)
		if err != nil {
			t.Fatal(err)
		}
		r.Snapshot.Signed.Meta[bin.name+".json"] = metadata.MetaFile(bin.md.Signed.Version)
		files = append(files, repo.File{Name: fmt.Sprintf("%d.%s.json", bin.md.Signed.Version, bin.name), Data: data})
	}
	snap, err := r.Refresh(e.keys, now)
	if err != nil {
		t.Fatal(err)
	}
	e.writeMetadata(append(files, snap...))

	if got := r.BinFor(p); got != from {
		t.Fatalf("%s belongs to %s, not %s", p, got, from)
	}
}

// TestPinAndReleaseIndex: bcagent pin finds a version whatever its file is
// called (with bins, through the signed release index), and release add
// refuses a second file for a version already published (flat and bins).
func TestPinAndReleaseIndex(t *testing.T) {
	for _, bins := range []int{0, 16} {
		t.Run(fmt.Sprintf("bins=%d", bins), func(t *testing.T) { testPinAndReleaseIndex(t, bins) })
	}
}

func testPinAndReleaseIndex(t *testing.T, bins int) {
	e := newEnvBins(t, bins, nil)
	old := e.publishWith("1.0.0", "nc-legacy-name.tar.gz", tarball(t, "1.0.0"), nil)
	e.publish("1.1.0")
	e.mustInstall("1.1.0")
	if err := e.do(func(a *client.Agent) error { return a.Pin(component, "1.0.0") }); err != nil {
		t.Fatal(err)
	}
	e.mustInstall("1.0.0")
	got, _ := os.ReadFile(filepath.Join(e.install, component, "current", "VERSION"))
	if !strings.Contains(string(got), "1.0.0") {
		t.Fatalf("installed VERSION %q after pinning 1.0.0 (%s)", got, old.Path)
	}

	before := testutil.HashTree(t, e.store.Dir)
	f := filepath.Join(e.dir, "build", "again", "nc-1.1.0-other.tar.gz")
	os.MkdirAll(filepath.Dir(f), 0o755)
	data := tarball(t, "1.1.0-other")
	os.WriteFile(f, data, 0o644)
	os.WriteFile(f+".p7s", sign(t, data, e.pki.Leaf), 0o644)
	_, err := publisher.AddRelease(context.Background(), e.store, e.keys, e.trust,
		publisher.ReleaseOptions{Component: component, Version: "1.1.0", Platform: platform, File: f}, nil)
	if !errors.Is(err, repo.ErrConflict) || !strings.Contains(err.Error(), "already published as") {
		t.Fatalf("a second file for 1.1.0: %v", err)
	}
	if testutil.HashTree(t, e.store.Dir) != before {
		t.Fatal("a refused add changed the repository")
	}
}
