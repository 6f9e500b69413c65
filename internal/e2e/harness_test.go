package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

const (
	component = "notification-client"
	platform  = "linux-amd64"
)

type env struct {
	t       *testing.T
	dir     string
	keys    repo.Keys
	world   *testutil.World
	pki     *testutil.PKI
	trust   *signer.Trust
	store   *publisher.DirStore
	srv     *httptest.Server
	state   string
	install string
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith lets a test change the agent's configuration before init.
func newEnvWith(t *testing.T, mutate func(*client.Config)) *env {
	t.Helper()
	return newEnvBins(t, 0, mutate)
}

// newEnvBins makes an environment whose repository has hashed bins.
func newEnvBins(t *testing.T, bins int, mutate func(*client.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	if _, err := publisher.GenerateKeys(keysDir, signer.KeyTypeEd25519); err != nil {
		t.Fatal(err)
	}
	keys, err := publisher.LoadKeys(keysDir, repo.TopLevelRoles...)
	if err != nil {
		t.Fatal(err)
	}
	world := testutil.NewWorld(t)
	pki := world.PKI
	pki.TrustDir = world.TrustDir
	trust, err := signer.LoadTrust(pki.TrustDir)
	if err != nil {
		t.Fatal(err)
	}
	store := &publisher.DirStore{Dir: filepath.Join(dir, "repo")}
	if _, err := publisher.InitBins(context.Background(), store, keys, time.Now(), bins); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(recorder{publisher.Handler(store, nil), &requests})
	t.Cleanup(srv.Close)
	e := &env{t: t, dir: dir, keys: keys, world: world, pki: pki, trust: trust, store: store, srv: srv,
		state: filepath.Join(dir, "agent"), install: filepath.Join(dir, "agent", "install")}
	cfg := client.Config{
		RepositoryURL: srv.URL, Components: []string{component}, Platform: platform,
		Channel: "stable", DeviceID: "INST-0042", DeviceModel: "Navios EX", TrustDir: pki.TrustDir,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	err = client.Init(e.state, client.InitOptions{RootFile: filepath.Join(store.Dir, "metadata", "1.root.json"), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// requests records the paths the repository server was asked for.
var requests struct {
	sync.Mutex
	paths []string
}

type recorder struct {
	next http.Handler
	log  *struct {
		sync.Mutex
		paths []string
	}
}

func (rc recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.log.Lock()
	rc.log.paths = append(rc.log.paths, r.URL.Path)
	rc.log.Unlock()
	rc.next.ServeHTTP(w, r)
}

// takeRequests returns and forgets the recorded paths.
func takeRequests() []string {
	requests.Lock()
	defer requests.Unlock()
	p := requests.paths
	requests.paths = nil
	return p
}

// tarball is a well-formed release of version v.
func tarball(t *testing.T, v string) []byte {
	return testutil.TarGz(t,
		testutil.TarEntry{Name: "bin/notification-client", Body: "#!/bin/sh\necho " + v + "\n", Mode: 0o755},
		testutil.TarEntry{Name: "VERSION", Body: v + "\n"})
}

func artifactName(v string) string { return "notification-client-" + v + ".tar.gz" }

// sign makes a detached signature with a leaf.
func sign(t *testing.T, data []byte, leaf *testutil.Leaf) []byte {
	t.Helper()
	sig, err := signer.SignDetached(bytes.NewReader(data), leaf.Chain, leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// publish releases version v the proper way, through publisher.AddRelease.
func (e *env) publish(v string) *publisher.ReleaseResult { return e.publishFeatures(v, nil) }

// publishFeatures releases version v turning on features.
func (e *env) publishFeatures(v string, features []repo.Feature) *publisher.ReleaseResult {
	e.t.Helper()
	return e.publishWith(v, artifactName(v), tarball(e.t, v), func(o *publisher.ReleaseOptions) { o.Features = features })
}

// publishWith signs data (detached CMS) and publishes it as file name of
// version v through publisher.AddRelease, after mutate adjusts the options.
func (e *env) publishWith(v, name string, data []byte, mutate func(*publisher.ReleaseOptions)) *publisher.ReleaseResult {
	e.t.Helper()
	f := filepath.Join(e.dir, "build", v, name)
	os.MkdirAll(filepath.Dir(f), 0o755)
	os.WriteFile(f, data, 0o644)
	os.WriteFile(f+".p7s", sign(e.t, data, e.pki.Leaf), 0o644)
	o := publisher.ReleaseOptions{Component: component, Version: v, Platform: platform, File: f, GateSign: e.codeSigner(e.pki.Leaf)}
	if mutate != nil {
		mutate(&o)
	}
	res, err := publisher.AddRelease(context.Background(), e.store, e.keys, e.trust, o, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// codeSigner signs gate manifests and device policies with leaf.
func (e *env) codeSigner(leaf *testutil.Leaf) publisher.CodeSigner {
	return func(content []byte) ([]byte, error) {
		return signer.SignDetached(bytes.NewReader(content), leaf.Chain, leaf.Key)
	}
}

func (e *env) loadRepo() *repo.Repo {
	e.t.Helper()
	r, err := repo.Load(func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(e.store.Dir, "metadata", name))
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) writeTarget(t repo.Target, data []byte) {
	e.t.Helper()
	p := filepath.Join(e.store.Dir, "targets", filepath.FromSlash(t.StorageName()))
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) writeMetadata(files []repo.File) {
	e.t.Helper()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(e.store.Dir, "metadata", f.Name), f.Data, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
}

// rawRelease is what an attacker holding the TUF keys (but not a
// code-signing certificate of the pinned publisher) could publish.
type rawRelease struct {
	version  string
	artifact []byte
	sig      []byte
	// pointer overrides the channel pointer's release path.
	pointer string
	// artPath overrides the artifact's target path (bypassing validation).
	artPath string
	// file is the artifact's file name (default notification-client-V.tar.gz)
	// and codesign its signature kind (default cms).
	file     string
	codesign string
	// features and gate are the release's declared features and its gate
	// manifest (nil: none).
	features []repo.Feature
	gate     *repo.Gate
}

func (e *env) publishRaw(rr rawRelease) {
	e.t.Helper()
	r := e.loadRepo()
	if rr.file == "" {
		rr.file = artifactName(rr.version)
	}
	if rr.codesign == "" {
		rr.codesign = repo.CodesignCMS
	}
	install := repo.InstallArchive
	if !strings.HasSuffix(rr.file, ".tar.gz") {
		install = repo.InstallFile
	}
	artPath := repo.ArtifactPath(component, platform, rr.version, rr.file)
	if rr.artPath != "" {
		artPath = rr.artPath
	}
	rel := &repo.Release{Component: component, Version: rr.version, Platform: platform,
		Install: install, Codesign: rr.codesign, Released: time.Now().UTC().Format(time.RFC3339),
		Features: rr.features, Gate: rr.gate}
	custom, err := rel.Custom()
	if err != nil {
		e.t.Fatal(err)
	}
	art := repo.NewTarget(artPath, rr.artifact, custom)
	sigT := repo.NewTarget(artPath+".p7s", rr.sig, nil)
	targets := []repo.Target{art, sigT}
	if rr.codesign != repo.CodesignCMS {
		targets = targets[:1]
	}
	for _, tt := range targets {
		sum, _ := hex.DecodeString(tt.SHA256)
		tf := metadataTarget(tt.Path, tt.Length, sum, tt.Custom)
		r.Targets.Signed.Targets[tt.Path] = tf // no path validation: the attacker's tooling
	}
	ptrPath := artPath
	if rr.pointer != "" {
		ptrPath = rr.pointer
	}
	ptr, _ := json.Marshal(repo.Pointer{Release: ptrPath})
	pt := repo.NewTarget(repo.ChannelPath(component, platform, "stable"), ptr, nil)
	if err := r.Set(pt); err != nil {
		e.t.Fatal(err)
	}
	files, err := r.Commit(e.keys, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if repo.ValidateTargetPath(art.Path) == nil {
		e.writeTarget(art, rr.artifact)
		if rr.codesign == repo.CodesignCMS {
			e.writeTarget(sigT, rr.sig)
		}
	}
	e.writeTarget(pt, ptr)
	e.writeMetadata(files)
}

// do opens the agent, runs fn and closes it.
func (e *env) do(fn func(a *client.Agent) error) error {
	e.t.Helper()
	a, err := client.Open(e.state, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer a.Close()
	return fn(a)
}

func (e *env) check() error {
	return e.do(func(a *client.Agent) error { _, err := a.Check(context.Background()); return err })
}
func (e *env) stage() error {
	return e.do(func(a *client.Agent) error { _, err := a.Stage(context.Background(), ""); return err })
}
func (e *env) apply() error {
	return e.do(func(a *client.Agent) error {
		_, err := a.Apply(context.Background(), "", client.ApplyOptions{})
		return err
	})
}

func (e *env) mustInstall(v string) {
	e.t.Helper()
	for _, op := range []func() error{e.check, e.stage, e.apply} {
		if err := op(); err != nil {
			e.t.Fatal(err)
		}
	}
	if got := e.current(); got != v {
		e.t.Fatalf("current is %q, want %q", got, v)
	}
}

func (e *env) current() string {
	v, _ := client.CurrentVersion(filepath.Join(e.install, component))
	return v
}

// snap fingerprints what an attack must not change: install/ (including
// `current`) and state.json.
func (e *env) snap() string {
	e.t.Helper()
	state, _ := os.ReadFile(filepath.Join(e.state, "state.json"))
	sum := sha256.Sum256(state)
	return testutil.HashTree(e.t, e.install) + "/" + hex.EncodeToString(sum[:])
}

func storageOf(p, sha string) string { return path.Join("targets", repo.ConsistentName(p, sha)) }

// repoURL points the agent at another server address (same repository).
func (e *env) repoURL(url string) {
	e.t.Helper()
	e.editConfig(func(cfg map[string]any) { cfg["repository_url"] = url })
}

// setChannel changes the agent's channel in config.json.
func (e *env) setChannel(t *testing.T, channel string) {
	t.Helper()
	e.editConfig(func(cfg map[string]any) { cfg["channel"] = channel })
}

func (e *env) editConfig(fn func(map[string]any)) {
	e.t.Helper()
	p := filepath.Join(e.state, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		e.t.Fatal(err)
	}
	var cfg map[string]any
	json.Unmarshal(b, &cfg)
	fn(cfg)
	b, _ = json.MarshalIndent(cfg, "", "  ")
	os.WriteFile(p, b, 0o600)
}

// secondAgent is another agent (another device id) on the same repository.
func (e *env) secondAgent(t *testing.T, deviceID string) *env {
	t.Helper()
	o := *e
	o.t = t
	o.state = filepath.Join(t.TempDir(), "agent2")
	o.install = filepath.Join(o.state, "install")
	err := client.Init(o.state, client.InitOptions{RootFile: filepath.Join(e.store.Dir, "metadata", "1.root.json"), Config: client.Config{
		RepositoryURL: e.srv.URL, Components: []string{component}, Platform: platform, Channel: "stable",
		DeviceID: deviceID, DeviceModel: "DxH 900", TrustDir: e.world.TrustDir}})
	if err != nil {
		t.Fatal(err)
	}
	return &o
}
