package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// specRepo is a TUF repository built by hand with go-tuf's metadata API
// and served by httptest, for the cases where the agent's TUF layer goes
// beyond go-tuf's Updater (tufspec.go). Every role has its own ed25519
// key; a delegated role is signed with every key any delegator gives it
// unless a test drops one.
type specRepo struct {
	t          *testing.T
	consistent bool
	root       *metadata.Metadata[metadata.RootType]
	roles      map[string]*metadata.Metadata[metadata.TargetsType] // "targets" and delegated roles
	order      []string                                            // delegated roles, in creation order
	snapshot   *metadata.Metadata[metadata.SnapshotType]
	timestamp  *metadata.Metadata[metadata.TimestampType]
	signers    map[string]map[string]signature.Signer // role -> key ID -> signer
	artifacts  map[string][]byte                      // target path -> bytes served

	mu       sync.Mutex
	files    map[string][]byte // URL path (unescaped) -> body
	requests []string          // escaped request paths
	srv      *httptest.Server
}

func newSpecRepo(t *testing.T, consistent bool) *specRepo {
	t.Helper()
	expires := time.Now().UTC().Add(24 * time.Hour).Truncate(time.Second)
	r := &specRepo{
		t: t, consistent: consistent,
		root:      metadata.Root(expires),
		roles:     map[string]*metadata.Metadata[metadata.TargetsType]{metadata.TARGETS: metadata.Targets(expires)},
		snapshot:  metadata.Snapshot(expires),
		timestamp: metadata.Timestamp(expires),
		signers:   map[string]map[string]signature.Signer{},
		artifacts: map[string][]byte{},
		files:     map[string][]byte{},
	}
	r.root.Signed.ConsistentSnapshot = consistent
	for _, role := range metadata.TOP_LEVEL_ROLE_NAMES {
		key, _ := r.newKey(role)
		if err := r.root.Signed.AddKey(key, role); err != nil {
			t.Fatal(err)
		}
	}
	r.sign(metadata.ROOT, r.root)
	data, err := r.root.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	r.files["/metadata/1.root.json"] = data
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.URL.EscapedPath())
		body, ok := r.files[req.URL.Path]
		r.mu.Unlock()
		if !ok {
			http.NotFound(w, req)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// newKey makes a key and a signer for role and returns the key and its ID.
func (r *specRepo) newKey(role string) (*metadata.Key, string) {
	r.t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		r.t.Fatal(err)
	}
	key, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		r.t.Fatal(err)
	}
	s, err := signature.LoadED25519Signer(priv)
	if err != nil {
		r.t.Fatal(err)
	}
	id, err := key.ID()
	if err != nil {
		r.t.Fatal(err)
	}
	if r.signers[role] == nil {
		r.signers[role] = map[string]signature.Signer{}
	}
	r.signers[role][id] = s
	return key, id
}

func (r *specRepo) sign(role string, md interface {
	Sign(signature.Signer) (*metadata.Signature, error)
}) {
	r.t.Helper()
	ids := make([]string, 0, len(r.signers[role]))
	for id := range r.signers[role] {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if _, err := md.Sign(r.signers[role][id]); err != nil {
			r.t.Fatal(err)
		}
	}
}

// delegate makes parent delegate paths to child with a new key of its
// own and returns that key's ID.
func (r *specRepo) delegate(parent, child string, paths ...string) string {
	r.t.Helper()
	p := r.roles[parent]
	if p.Signed.Delegations == nil {
		p.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	}
	p.Signed.Delegations.Roles = append(p.Signed.Delegations.Roles, metadata.DelegatedRole{Name: child, Threshold: 1, Paths: paths})
	key, id := r.newKey(child)
	if err := p.Signed.AddKey(key, child); err != nil {
		r.t.Fatal(err)
	}
	if _, ok := r.roles[child]; !ok {
		r.roles[child] = metadata.Targets(p.Signed.Expires)
		r.order = append(r.order, child)
	}
	return id
}

// add lists data as target name in role, with the hashes of algs, and
// serves it.
func (r *specRepo) add(role, name string, data []byte, algs ...string) *metadata.TargetFiles {
	r.t.Helper()
	tf, err := metadata.TargetFile().FromBytes(name, data, algs...)
	if err != nil {
		r.t.Fatal(err)
	}
	tf.Path = name
	r.roles[role].Signed.Targets[name] = tf
	r.artifacts[name] = data
	return tf
}

// publish signs every role and serves metadata and targets where a client
// of a repository with this consistent_snapshot looks for them.
func (r *specRepo) publish() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	metaPath := func(role string, version int64) string {
		if r.consistent {
			return fmt.Sprintf("/metadata/%d.%s.json", version, role)
		}
		return "/metadata/" + role + ".json"
	}
	for _, role := range append(slices.Clone(r.order), metadata.TARGETS) {
		md := r.roles[role]
		md.Signatures = nil
		r.sign(role, md)
		data, err := md.ToBytes(false)
		if err != nil {
			r.t.Fatal(err)
		}
		r.files[metaPath(role, md.Signed.Version)] = data
		r.snapshot.Signed.Meta[role+".json"] = metadata.MetaFile(md.Signed.Version)
		for name, tf := range md.Signed.Targets {
			p := "/targets/" + name
			if !r.consistent {
				r.files[p] = r.artifacts[name]
				continue
			}
			for _, sum := range tf.Hashes {
				dir, file := path.Split(name)
				r.files["/targets/"+dir+fmt.Sprintf("%x", []byte(sum))+"."+file] = r.artifacts[name]
			}
		}
	}
	r.snapshot.Signatures = nil
	r.sign(metadata.SNAPSHOT, r.snapshot)
	data, err := r.snapshot.ToBytes(false)
	if err != nil {
		r.t.Fatal(err)
	}
	r.files[metaPath(metadata.SNAPSHOT, r.snapshot.Signed.Version)] = data
	r.timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(r.snapshot.Signed.Version)
	r.timestamp.Signatures = nil
	r.sign(metadata.TIMESTAMP, r.timestamp)
	if data, err = r.timestamp.ToBytes(false); err != nil {
		r.t.Fatal(err)
	}
	r.files["/metadata/timestamp.json"] = data
	r.requests = nil
}

// client returns a TUF client of the agent's layer, initialized with the
// repository's root, and the directory it downloads into.
func (r *specRepo) client() (*TUF, string) {
	r.t.Helper()
	dir := r.t.TempDir()
	if err := InitTUF(filepath.Join(dir, "metadata"), r.files["/metadata/1.root.json"]); err != nil {
		r.t.Fatal(err)
	}
	c, err := NewTUF(TUFOptions{MetadataDir: filepath.Join(dir, "metadata"), MetadataURL: r.srv.URL + "/metadata/", TargetsURL: r.srv.URL + "/targets"})
	if err != nil {
		r.t.Fatal(err)
	}
	out := filepath.Join(dir, "targets")
	if err := os.Mkdir(out, 0o700); err != nil {
		r.t.Fatal(err)
	}
	return c, out
}

// targetRequests are the requests made below /targets/.
func (r *specRepo) targetRequests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.requests {
		if len(p) > len("/targets/") && p[:len("/targets/")] == "/targets/" {
			out = append(out, p)
		}
	}
	return out
}

// dirFiles lists the names in dir.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestDownloadChecksEveryListedHash(t *testing.T) {
	const name = "dir/artifact.bin"
	data := []byte("the artifact's bytes")
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	wrong512 := sha512.Sum512([]byte("other bytes"))
	wrong256 := sha256.Sum256([]byte("other bytes"))
	for _, tc := range []struct {
		name    string
		hashes  metadata.Hashes
		wantErr bool
		wantURL string // the target request, "" if none may be made
	}{
		{"sha256 only", metadata.Hashes{"sha256": s256[:]}, false, fmt.Sprintf("/targets/dir/%x.artifact.bin", s256)},
		{"sha512 only is usable", metadata.Hashes{"sha512": s512[:]}, false, fmt.Sprintf("/targets/dir/%x.artifact.bin", s512)},
		{"sha256 and sha512", metadata.Hashes{"sha256": s256[:], "sha512": s512[:]}, false, fmt.Sprintf("/targets/dir/%x.artifact.bin", s256)},
		{"wrong sha512 beside the right sha256", metadata.Hashes{"sha256": s256[:], "sha512": wrong512[:]}, true, fmt.Sprintf("/targets/dir/%x.artifact.bin", s256)},
		{"wrong sha256 beside the right sha512", metadata.Hashes{"sha256": wrong256[:], "sha512": s512[:]}, true, fmt.Sprintf("/targets/dir/%x.artifact.bin", wrong256)},
		{"an algorithm the agent cannot check", metadata.Hashes{"sha3-256": s256[:]}, true, ""},
		{"an unknown algorithm beside sha256", metadata.Hashes{"sha256": s256[:], "blake9": s256[:]}, true, ""},
		{"a sha512 of the wrong size", metadata.Hashes{"sha256": s256[:], "sha512": s256[:]}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSpecRepo(t, true)
			tf := r.add(metadata.TARGETS, name, data, "sha256")
			tf.Hashes = tc.hashes
			r.publish()
			c, out := r.client()
			file, err := c.Download(context.Background(), name, out)
			if tc.wantErr {
				if !errors.Is(err, ErrVerification) {
					t.Fatalf("Download: %v, want a verification failure (exit 3)", err)
				}
				if got := dirFiles(t, out); len(got) != 0 {
					t.Fatalf("a refused target left %v in the target directory", got)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(file)
				if err != nil || string(got) != string(data) {
					t.Fatalf("downloaded %q, %v", got, err)
				}
				if base := filepath.Base(file); base != neturl.PathEscape(name) {
					t.Fatalf("stored as %s", base)
				}
			}
			reqs := r.targetRequests()
			if tc.wantURL == "" && len(reqs) != 0 || tc.wantURL != "" && !slices.Equal(reqs, []string{tc.wantURL}) {
				t.Fatalf("target requests %v, want %q", reqs, tc.wantURL)
			}
		})
	}
}

// A target that lists no hash is refused in delegated metadata too (go-tuf
// refuses to parse it; a walk that meets it fails as a verification
// failure), and the hasher never accepts one.
func TestTargetWithoutHashes(t *testing.T) {
	if _, err := newTargetHasher(&metadata.TargetFiles{Path: "x", Length: 1}); !errors.Is(err, ErrVerification) {
		t.Fatalf("newTargetHasher: %v", err)
	}
	r := newSpecRepo(t, true)
	r.delegate(metadata.TARGETS, "team", "dir/*")
	r.add("team", "dir/x", []byte("x"), "sha256").Hashes = metadata.Hashes{}
	r.publish()
	c, out := r.client()
	if _, err := c.Download(context.Background(), "dir/x", out); !errors.Is(err, ErrVerification) {
		t.Fatalf("Download: %v, want a verification failure", err)
	}
}

// The same checks hold for the agent's streaming download into a file it
// resumes (session.download), not only for the TUF client.
func TestSessionDownloadRefusesWrongSHA512(t *testing.T) {
	data := []byte("resumable bytes")
	s256 := sha256.Sum256(data)
	wrong512 := sha512.Sum512([]byte("x"))
	r := newSpecRepo(t, true)
	tf := r.add(metadata.TARGETS, "a.bin", data, "sha256")
	tf.Hashes["sha512"] = wrong512[:]
	r.publish()
	c, out := r.client()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	found, err := c.s.lookup("a.bin")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(out, "a.bin.partial"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(data[:5]) // an earlier, interrupted download
	sum, err := c.s.download(context.Background(), found, f, 0, nil)
	if !errors.Is(err, ErrVerification) || sum != nil {
		t.Fatalf("download: %x, %v; want a verification failure", sum, err)
	}
	if _, err := c.s.download(context.Background(), &metadata.TargetFiles{Path: "a.bin", Length: tf.Length, Hashes: metadata.Hashes{"sha256": s256[:]}}, f, 0, nil); err != nil {
		t.Fatalf("the same bytes with only the right sha256: %v", err)
	}
}

func TestTargetURLsFollowConsistentSnapshot(t *testing.T) {
	data := []byte("bytes")
	sum := sha256.Sum256(data)
	for _, tc := range []struct {
		name       string
		consistent bool
		target     string
		wantTarget string
		wantMeta   []string
	}{
		{"consistent snapshots", true, "dir/file.txt", fmt.Sprintf("/targets/dir/%x.file.txt", sum),
			[]string{"/metadata/2.root.json", "/metadata/timestamp.json", "/metadata/1.snapshot.json", "/metadata/1.targets.json", "/metadata/1.team.json"}},
		{"consistent_snapshot false: plain names", false, "dir/file.txt", "/targets/dir/file.txt",
			[]string{"/metadata/2.root.json", "/metadata/timestamp.json", "/metadata/snapshot.json", "/metadata/targets.json", "/metadata/team.json"}},
		{"a space, escaped", false, "dir/a file.txt", "/targets/dir/a%20file.txt", nil},
		{"'?' and '#' are part of the name", true, "dir/what?#.txt", fmt.Sprintf("/targets/dir/%x.what%%3F%%23.txt", sum), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSpecRepo(t, tc.consistent)
			r.delegate(metadata.TARGETS, "team", "dir/*")
			r.add("team", tc.target, data, "sha256")
			r.publish()
			c, out := r.client()
			if _, err := c.Download(context.Background(), tc.target, out); err != nil {
				t.Fatal(err)
			}
			if got := r.targetRequests(); !slices.Equal(got, []string{tc.wantTarget}) {
				t.Fatalf("target requests %v, want %s", got, tc.wantTarget)
			}
			if tc.wantMeta != nil {
				r.mu.Lock()
				got := slices.Clone(r.requests[:len(r.requests)-1])
				r.mu.Unlock()
				if !slices.Equal(got, tc.wantMeta) {
					t.Fatalf("metadata requests %v, want %v", got, tc.wantMeta)
				}
			}
		})
	}
}

// Names the agent's own layout would never produce are looked up through
// the delegation graph as they are: only where a name becomes a file is it
// checked.
func TestDelegatedTargetNamesAreNotRefusedBeforeTheWalk(t *testing.T) {
	for _, name := range []string{"dir/a file.txt", "dir/ümlaut", "dir/semi;colon,comma", "dir/..hidden", "dir/100%41"} {
		t.Run(name, func(t *testing.T) {
			r := newSpecRepo(t, true)
			r.delegate(metadata.TARGETS, "team", "dir/*")
			r.add("team", name, []byte("in a delegated role"), "sha256", "sha512")
			r.publish()
			c, out := r.client()
			file, err := c.Download(context.Background(), name, out)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(file); string(got) != "in a delegated role" {
				t.Fatalf("got %q", got)
			}
			// The agent's session finds it too.
			if tf, err := c.s.lookup(name); err != nil || tf.Path != name {
				t.Fatalf("lookup: %v, %v", tf, err)
			}
		})
	}
	t.Run("not there", func(t *testing.T) {
		r := newSpecRepo(t, true)
		r.delegate(metadata.TARGETS, "team", "*")
		r.publish()
		c, out := r.client()
		if _, err := c.Download(context.Background(), "nonexistent target", out); !errors.Is(err, errTargetNotFound) {
			t.Fatalf("Download: %v, want not found", err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if !slices.Contains(r.requests, "/metadata/1.team.json") {
			t.Fatalf("the delegated role was not consulted: %v", r.requests)
		}
	})
	t.Run("a name that cannot be a file", func(t *testing.T) {
		r := newSpecRepo(t, true)
		r.add(metadata.TARGETS, "..", []byte("x"), "sha256")
		r.publish()
		c, out := r.client()
		if _, err := c.Download(context.Background(), "..", out); !errors.Is(err, ErrUsage) {
			t.Fatalf("Download(..): %v", err)
		}
	})
}

// A role delegated by two parents ("diamond") is trusted through each
// parent only if that parent's keys signed it, even after the same session
// loaded it through the other parent (go-tuf issue #759).
func TestRoleDelegatedByTwoParentsIsVerifiedAgainstTheCurrentDelegator(t *testing.T) {
	for _, tc := range []struct {
		name     string
		signedBy string // "a", "b" or "both"
		order    []string
		want     map[string]bool // target -> downloaded
	}{
		{"signed for A only, A first", "a", []string{"team-a/f", "team-b/f"}, map[string]bool{"team-a/f": true, "team-b/f": false}},
		{"signed for A only, B first", "a", []string{"team-b/f", "team-a/f"}, map[string]bool{"team-a/f": true, "team-b/f": false}},
		{"signed for B only, A first", "b", []string{"team-a/f", "team-b/f"}, map[string]bool{"team-a/f": false, "team-b/f": true}},
		{"signed for both", "both", []string{"team-a/f", "team-b/f"}, map[string]bool{"team-a/f": true, "team-b/f": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newSpecRepo(t, true)
			r.delegate(metadata.TARGETS, "parent-a", "team-a/*")
			r.delegate(metadata.TARGETS, "parent-b", "team-b/*")
			keyA := r.delegate("parent-a", "release", "team-a/*")
			keyB := r.delegate("parent-b", "release", "team-b/*")
			switch tc.signedBy {
			case "a":
				delete(r.signers["release"], keyB)
			case "b":
				delete(r.signers["release"], keyA)
			}
			r.add("release", "team-a/f", []byte("A"), "sha256")
			r.add("release", "team-b/f", []byte("B"), "sha256")
			r.publish()
			c, out := r.client() // one client: the role stays loaded between lookups
			for _, target := range tc.order {
				_, err := c.Download(context.Background(), target, out)
				switch {
				case tc.want[target] && err != nil:
					t.Fatalf("%s: %v", target, err)
				case !tc.want[target] && !errors.Is(err, ErrVerification):
					t.Fatalf("%s: %v, want a verification failure", target, err)
				}
			}
			var want []string
			for target, ok := range tc.want {
				if ok {
					want = append(want, neturl.PathEscape(target))
				}
			}
			slices.Sort(want)
			if got := dirFiles(t, out); !slices.Equal(got, want) {
				t.Fatalf("downloaded %v, want %v", got, want)
			}
		})
	}
}

// A target already in the target directory with the signed length and
// hashes is not downloaded again; one that changed is.
func TestTUFDownloadKeepsAVerifiedFile(t *testing.T) {
	r := newSpecRepo(t, true)
	r.add(metadata.TARGETS, "f.txt", []byte("content"), "sha256", "sha512")
	r.publish()
	c, out := r.client()
	file, err := c.Download(context.Background(), "f.txt", out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Download(context.Background(), "f.txt", out); err != nil {
		t.Fatal(err)
	}
	if n := len(r.targetRequests()); n != 1 {
		t.Fatalf("%d target requests, want 1 (the second download uses the verified file)", n)
	}
	os.WriteFile(file, []byte("changed"), 0o600)
	if _, err := c.Download(context.Background(), "f.txt", out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(file); string(got) != "content" || len(r.targetRequests()) != 2 {
		t.Fatalf("after a local change: %q, %d requests", got, len(r.targetRequests()))
	}
}
