package publisher_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

type fixture struct {
	dir   string
	keys  repo.Keys
	pki   *testutil.PKI
	trust *signer.Trust
	store *publisher.DirStore
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	if _, err := publisher.GenerateKeys(filepath.Join(dir, "keys"), signer.KeyTypeECDSAP256); err != nil {
		t.Fatal(err)
	}
	keys, err := publisher.LoadKeys(filepath.Join(dir, "keys"), repo.TopLevelRoles...)
	if err != nil {
		t.Fatal(err)
	}
	pki := testutil.NewPKI(t)
	trust, err := signer.LoadTrust(pki.TrustDir)
	if err != nil {
		t.Fatal(err)
	}
	store := &publisher.DirStore{Dir: filepath.Join(dir, "repo")}
	if _, err := publisher.Init(context.Background(), store, keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, keys: keys, pki: pki, trust: trust, store: store}
}

// artifact writes a signed artifact: a .zip (the only archive kind used
// here) holding content as the file "payload", anything else is content
// itself. release add unpacks archives as the agents would, so they must be
// real ones.
func (f *fixture) artifact(t *testing.T, name, content string, leaf *testutil.Leaf) string {
	t.Helper()
	p := filepath.Join(f.dir, "build", name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if strings.HasSuffix(name, ".zip") {
		content = string(testutil.Zip(t, testutil.TarEntry{Name: "payload", Body: content}))
	}
	os.WriteFile(p, []byte(content), 0o644)
	sig, err := signer.SignDetached(strings.NewReader(content), leaf.Chain, leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p+".p7s", sig, 0o644)
	return p
}

func (f *fixture) add(o publisher.ReleaseOptions) (*publisher.ReleaseResult, error) {
	if o.Component == "" {
		o.Component = "notification-client"
	}
	if o.Platform == "" {
		o.Platform = "windows-amd64"
	}
	return publisher.AddRelease(context.Background(), f.store, f.keys, f.trust, o, nil)
}

func TestInitRefusesExistingRepository(t *testing.T) {
	f := newFixture(t)
	if _, err := publisher.Init(context.Background(), f.store, f.keys, time.Now()); !errors.Is(err, publisher.ErrRepoExists) {
		t.Fatalf("want ErrExists, got %v", err)
	}
}

func TestAddReleaseAndList(t *testing.T) {
	f := newFixture(t)
	file := f.artifact(t, "nc.zip", "zip bytes", f.pki.Leaf)
	res, err := f.add(publisher.ReleaseOptions{Version: "1.0.0", File: file, Channels: []string{"stable", "beta"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != "notification-client/windows-amd64/1.0.0/nc.zip" || res.TargetsVersion != 2 || res.TimestampVersion != 2 {
		t.Fatalf("result %+v", res)
	}
	// Publishing the identical artifact again changes nothing.
	before := testutil.HashTree(t, f.store.Dir)
	res, err = f.add(publisher.ReleaseOptions{Version: "1.0.0", File: file, Channels: []string{"stable", "beta"}})
	if err != nil || !res.AlreadyPresent {
		t.Fatalf("re-add: %+v %v", res, err)
	}
	if testutil.HashTree(t, f.store.Dir) != before {
		t.Fatal("idempotent re-add changed the repository")
	}
	list, err := publisher.ListReleases(context.Background(), f.store)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Version != "1.0.0" || strings.Join(list[0].Channels, ",") != "beta,stable" || list[0].Install != repo.InstallArchive {
		t.Fatalf("list %+v", list)
	}
	st, err := publisher.Status(context.Background(), f.store, time.Now(), 0)
	if err != nil || len(st.Warnings) != 0 || st.Releases != 1 {
		t.Fatalf("status %+v %v", st, err)
	}
	st, err = publisher.Status(context.Background(), f.store, time.Now().Add(36*time.Hour), 0)
	if err != nil || len(st.Warnings) == 0 || !strings.Contains(st.Warnings[0], "timestamp v2 expired") {
		t.Fatalf("status of an expired timestamp: %+v %v", st, err)
	}
}

// TestFailedAddLeavesRepositoryUnchanged: every refused release add leaves
// the repository byte for byte as it was.
func TestFailedAddLeavesRepositoryUnchanged(t *testing.T) {
	f := newFixture(t)
	good := f.artifact(t, "nc.zip", "version one", f.pki.Leaf)
	if _, err := f.add(publisher.ReleaseOptions{Version: "1.0.0", File: good}); err != nil {
		t.Fatal(err)
	}
	evilRoot := testutil.NewRoot(t, "Evil").Intermediate(t, "Evil CA").Leaf(t, testutil.LeafOptions{})
	other := f.artifact(t, "other/nc.zip", "version one, changed", f.pki.Leaf)
	untrusted := f.artifact(t, "untrusted/nc.zip", "x", evilRoot)
	noEKU := f.artifact(t, "noeku/nc.zip", "x", f.pki.Intermediate.Leaf(t, testutil.LeafOptions{NoEKU: true}))
	tampered := f.artifact(t, "tampered/nc.zip", "x", f.pki.Leaf)
	os.WriteFile(tampered, []byte("y"), 0o644)
	badName := f.artifact(t, `bad\name.zip`, "x", f.pki.Leaf)
	otherName := f.artifact(t, "renamed/nc2.zip", "version one", f.pki.Leaf)
	wrongKeys := newFixture(t).keys

	cases := []struct {
		name string
		opts publisher.ReleaseOptions
		keys repo.Keys
		want error
	}{
		{"same version, other content", publisher.ReleaseOptions{Version: "1.0.0", File: other}, nil, repo.ErrConflict},
		{"same version, other file name", publisher.ReleaseOptions{Version: "1.0.0", File: otherName}, nil, repo.ErrConflict},
		{"untrusted root", publisher.ReleaseOptions{Version: "1.1.0", File: untrusted}, nil, signer.ErrVerification},
		{"leaf without codeSigning", publisher.ReleaseOptions{Version: "1.1.0", File: noEKU}, nil, signer.ErrVerification},
		{"content changed after signing", publisher.ReleaseOptions{Version: "1.1.0", File: tampered}, nil, signer.ErrVerification},
		{"component with ..", publisher.ReleaseOptions{Component: "../etc", Version: "1.1.0", File: good}, nil, publisher.ErrUsage},
		{"backslash in file name", publisher.ReleaseOptions{Version: "1.1.0", File: badName}, nil, publisher.ErrUsage},
		{"bad version", publisher.ReleaseOptions{Version: "1.1", File: good}, nil, publisher.ErrUsage},
		{"bad platform", publisher.ReleaseOptions{Platform: "windows/amd64", Version: "1.1.0", File: good}, nil, publisher.ErrUsage},
		{"bad channel", publisher.ReleaseOptions{Version: "1.1.0", File: good, Channels: []string{"../stable"}}, nil, publisher.ErrUsage},
		{"missing signature", publisher.ReleaseOptions{Version: "1.1.0", File: good, Signature: good + ".nope"}, nil, publisher.ErrUsage},
		{"keys of another repository", publisher.ReleaseOptions{Version: "1.1.0", File: good}, wrongKeys, repo.ErrWrongKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.HashTree(t, f.store.Dir)
			keys := f.keys
			if tc.keys != nil {
				keys = tc.keys
			}
			_, err := publisher.AddRelease(context.Background(), f.store, keys, f.trust, withDefaults(tc.opts), nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
			if after := testutil.HashTree(t, f.store.Dir); after != before {
				t.Fatal("the refused release add changed the repository")
			}
		})
	}
}

func withDefaults(o publisher.ReleaseOptions) publisher.ReleaseOptions {
	if o.Component == "" {
		o.Component = "notification-client"
	}
	if o.Platform == "" {
		o.Platform = "windows-amd64"
	}
	return o
}

// TestExpiryWindowEdges: a role is named exactly when it expires within the
// window; snapshot and timestamp keep their own refresh-timer thresholds.
func TestExpiryWindowEdges(t *testing.T) {
	f := newFixture(t)
	r, err := publisher.Status(context.Background(), f.store, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var targets time.Time
	for _, rs := range r.Roles {
		if rs.Role == repo.RoleTargets {
			targets = rs.Expires
		}
	}
	window := 14 * 24 * time.Hour
	names := func(at time.Time) []string {
		st, err := publisher.Status(context.Background(), f.store, at, window)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rs := range st.Roles {
			if rs.Warning != "" {
				out = append(out, rs.Role)
			}
		}
		return out
	}
	if got := names(targets.Add(-window - time.Second)); slices.Contains(got, repo.RoleTargets) {
		t.Errorf("one second outside the window: %v", got)
	}
	if got := names(targets.Add(-window + time.Second)); !slices.Contains(got, repo.RoleTargets) {
		t.Errorf("one second inside the window: %v", got)
	}
	// A fresh repository has no warning with a 14-day window: timestamp and
	// snapshot are judged by their refresh timer, not the window.
	if got := names(time.Now()); len(got) != 0 {
		t.Errorf("fresh repository warns: %v", got)
	}
	if w, err := publisher.ParseWindow("14d"); err != nil || w != window {
		t.Errorf("14d = %v, %v", w, err)
	}
	if _, err := publisher.ParseWindow("two weeks"); err == nil {
		t.Error("accepted a bad window")
	}
}

// racingStore lets another publish win just before this one swaps
// timestamp.json, as a concurrent publisher would.
type racingStore struct {
	publisher.Store
	once  sync.Once
	other func()
}

func (r *racingStore) Swap(ctx context.Context, name, tag string, data []byte) error {
	if name == "metadata/timestamp.json" {
		r.once.Do(r.other)
	}
	return r.Store.Swap(ctx, name, tag, data)
}

func TestLoserOfARaceFailsClearlyOrRetries(t *testing.T) {
	f := newFixture(t)
	mine := f.artifact(t, "mine/nc.zip", "mine", f.pki.Leaf)
	theirs := f.artifact(t, "theirs/nc.zip", "theirs", f.pki.Leaf)
	rs := &racingStore{Store: f.store, other: func() {
		if _, err := f.add(publisher.ReleaseOptions{Version: "2.0.0", File: theirs}); err != nil {
			t.Fatal(err)
		}
	}}
	_, err := publisher.AddRelease(context.Background(), rs, f.keys, f.trust, withDefaults(publisher.ReleaseOptions{Version: "1.0.0", File: mine}), nil)
	if !errors.Is(err, publisher.ErrChanged) || !strings.Contains(err.Error(), "repository changed while publishing; run again") {
		t.Fatalf("the loser must fail clearly, got %v", err)
	}
	// Nothing of the winner was lost, and the repository verifies.
	list, err := publisher.ListReleases(context.Background(), f.store)
	if err != nil || len(list) != 1 || list[0].Version != "2.0.0" {
		t.Fatalf("after the race: %+v %v", list, err)
	}
	// With retries the loser gets in too.
	err = publisher.Retry(context.Background(), 3, func() error {
		_, err := publisher.AddRelease(context.Background(), f.store, f.keys, f.trust, withDefaults(publisher.ReleaseOptions{Version: "1.0.0", File: mine}), nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := publisher.ListReleases(context.Background(), f.store); len(list) != 2 {
		t.Fatalf("after the retry: %+v", list)
	}
}

// release add reports the expiry warnings of the repository it committed.
func TestReleaseAddWarnsOfExpiry(t *testing.T) {
	f := newFixture(t)
	res, err := f.add(publisher.ReleaseOptions{Version: "1.0.0", File: f.artifact(t, "nc.zip", "zip", f.pki.Leaf)})
	if err != nil || len(res.Warnings) != 0 {
		t.Fatalf("a fresh repository: %v %v", res, err)
	}
	// A repository initialized 355 days ago: its root (365 days) expires
	// within the 14-day window; targets, snapshot and timestamp are signed
	// afresh by the publish.
	old := &publisher.DirStore{Dir: filepath.Join(f.dir, "old")}
	if _, err := publisher.Init(context.Background(), old, f.keys, time.Now().Add(-355*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	res, err = publisher.AddRelease(context.Background(), old, f.keys, f.trust, publisher.ReleaseOptions{Component: "notification-client", Platform: "windows-amd64",
		Version: "1.0.0", File: f.artifact(t, "old/nc.zip", "zip", f.pki.Leaf)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "root v1 expires in 9 days") {
		t.Fatalf("warnings %q", res.Warnings)
	}
}

// dyingStore loses the publisher right before it switches timestamp.json:
// the versioned metadata it wrote stays behind, unreferenced.
type dyingStore struct{ publisher.Store }

func (d dyingStore) Swap(ctx context.Context, name, tag string, data []byte) error {
	if name == "metadata/timestamp.json" {
		return errors.New("power cut")
	}
	return d.Store.Swap(ctx, name, tag, data)
}

// Publishes interrupted before timestamp.json leave immutable versioned
// files behind; the next publish steps past them (flat and with bins).
func TestPublishAfterInterruptedPublishes(t *testing.T) {
	f := newFixture(t)
	for _, bins := range []int{0, 16} {
		store := &publisher.DirStore{Dir: filepath.Join(f.dir, fmt.Sprintf("repo-%d", bins))}
		if _, err := publisher.InitBins(context.Background(), store, f.keys, time.Now(), bins); err != nil {
			t.Fatal(err)
		}
		add := func(s publisher.Store, v string) error {
			_, err := publisher.AddRelease(context.Background(), s, f.keys, f.trust, publisher.ReleaseOptions{Component: "notification-client",
				Platform: "windows-amd64", Version: v, File: f.artifact(t, fmt.Sprintf("%d/%s/nc.zip", bins, v), "zip "+v, f.pki.Leaf)}, nil)
			return err
		}
		for _, v := range []string{"1.0.0", "1.0.1", "1.0.2"} {
			if err := add(dyingStore{store}, v); err == nil || !strings.Contains(err.Error(), "power cut") {
				t.Fatalf("bins %d: interrupted publish: %v", bins, err)
			}
		}
		orphans, _ := filepath.Glob(filepath.Join(store.Dir, "metadata", "4.snapshot.json"))
		if len(orphans) != 1 {
			t.Fatalf("bins %d: the interrupted publishes did not leave 2-4.snapshot.json behind", bins)
		}
		if err := add(store, "1.1.0"); err != nil {
			t.Fatalf("bins %d: publish after interrupted ones: %v", bins, err)
		}
		st, err := publisher.Status(context.Background(), store, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.Releases != 1 {
			t.Fatalf("bins %d: %d releases, want only the one that was published", bins, st.Releases)
		}
		for _, rs := range st.Roles {
			if rs.Role == repo.RoleSnapshot && rs.Version != 5 {
				t.Fatalf("bins %d: snapshot v%d, want v5 (past the three left behind)", bins, rs.Version)
			}
		}
	}
}

// release list shows a yanked release and the reason it was withdrawn.
func TestListReleasesShowsYanks(t *testing.T) {
	f := newFixture(t)
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if _, err := f.add(publisher.ReleaseOptions{Version: v, File: f.artifact(t, "nc-"+v+".zip", "zip "+v, f.pki.Leaf)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := publisher.Yank(context.Background(), f.store, f.keys, "notification-client", "windows-amd64", "1.1.0", "crashes on start", time.Now()); err != nil {
		t.Fatal(err)
	}
	list, err := publisher.ListReleases(context.Background(), f.store)
	if err != nil || len(list) != 2 {
		t.Fatalf("list %+v %v", list, err)
	}
	for _, r := range list {
		yanked := r.Version == "1.1.0"
		if r.Yanked != yanked || (r.YankReason == "crashes on start") != yanked {
			t.Errorf("%s: yanked %v, reason %q", r.Version, r.Yanked, r.YankReason)
		}
	}
	if strings.Join(list[0].Channels, ",")+strings.Join(list[1].Channels, ",") != "stable" {
		t.Errorf("channels after the yank: %+v", list)
	}
}
