package client

// A small in-package harness for flow tests: a real TUF repository made
// with package publisher, served by publisher.Handler on 127.0.0.1, and an
// agent state directory initialized against it (the same shape as
// internal/e2e/harness_test.go, which is another package).

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

const (
	flowComp     = "notification-client"
	flowPlatform = "linux-amd64"
)

type flowEnv struct {
	t     *testing.T
	dir   string
	keys  repo.Keys
	world *testutil.World
	trust *signer.Trust
	store *publisher.DirStore
	srv   *httptest.Server
	state string

	mu    sync.Mutex
	paths []string                                          // request paths the server saw
	hdrs  []http.Header                                     // request headers, same order
	hook  func(w http.ResponseWriter, r *http.Request) bool // true: handled
}

// newFlowEnv makes a repository (no releases yet) and an initialized agent
// state directory; mutate may change the agent's configuration first.
func newFlowEnv(t *testing.T, mutate func(*Config)) *flowEnv {
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
	world.PKI.TrustDir = world.TrustDir
	trust, err := signer.LoadTrust(world.TrustDir)
	if err != nil {
		t.Fatal(err)
	}
	store := &publisher.DirStore{Dir: filepath.Join(dir, "repo")}
	if _, err := publisher.InitBins(context.Background(), store, keys, time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	e := &flowEnv{t: t, dir: dir, keys: keys, world: world, trust: trust, store: store, state: filepath.Join(dir, "agent")}
	h := publisher.Handler(store, nil)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.paths = append(e.paths, r.URL.Path)
		e.hdrs = append(e.hdrs, r.Header.Clone())
		hook := e.hook
		e.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	cfg := e.config()
	if mutate != nil {
		mutate(&cfg)
	}
	if err := Init(e.state, InitOptions{RootFile: e.rootFile(), Config: cfg}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *flowEnv) config() Config {
	return Config{
		RepositoryURL: e.srv.URL, Components: []string{flowComp}, Platform: flowPlatform,
		Channel: "stable", DeviceID: "INST-0042", DeviceModel: "Navios EX", TrustDir: e.world.TrustDir,
	}
}

func (e *flowEnv) rootFile() string { return filepath.Join(e.store.Dir, "metadata", "1.root.json") }

func (e *flowEnv) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	e.mu.Lock()
	e.hook = h
	e.mu.Unlock()
}

// takeRequests returns and forgets the recorded request paths and headers.
func (e *flowEnv) takeRequests() ([]string, []http.Header) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, h := e.paths, e.hdrs
	e.paths, e.hdrs = nil, nil
	return p, h
}

func flowTarball(t *testing.T, v string) []byte {
	return testutil.TarGz(t,
		testutil.TarEntry{Name: "bin/notification-client", Body: "#!/bin/sh\necho " + v + "\n", Mode: 0o755},
		testutil.TarEntry{Name: "VERSION", Body: v + "\n"})
}

func flowArtifact(v string) string { return "notification-client-" + v + ".tar.gz" }

func (e *flowEnv) codeSigner() publisher.CodeSigner {
	leaf := e.world.PKI.Leaf
	return func(content []byte) ([]byte, error) {
		return signer.SignDetached(bytes.NewReader(content), leaf.Chain, leaf.Key)
	}
}

// publish releases version v (a tarball) with features.
func (e *flowEnv) publish(v string, features ...repo.Feature) *publisher.ReleaseResult {
	e.t.Helper()
	return e.publishWith(v, flowArtifact(v), flowTarball(e.t, v), func(o *publisher.ReleaseOptions) { o.Features = features })
}

// publishWith signs data and publishes it through publisher.AddRelease.
func (e *flowEnv) publishWith(v, name string, data []byte, mutate func(*publisher.ReleaseOptions)) *publisher.ReleaseResult {
	e.t.Helper()
	f := filepath.Join(e.dir, "build", v, name)
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(f, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	leaf := e.world.PKI.Leaf
	sig, err := signer.SignDetached(bytes.NewReader(data), leaf.Chain, leaf.Key)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(f+".p7s", sig, 0o644); err != nil {
		e.t.Fatal(err)
	}
	o := publisher.ReleaseOptions{Component: flowComp, Version: v, Platform: flowPlatform, File: f, GateSign: e.codeSigner()}
	if mutate != nil {
		mutate(&o)
	}
	res, err := publisher.AddRelease(context.Background(), e.store, e.keys, e.trust, o, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// open opens the agent; the caller closes it.
func (e *flowEnv) open() *Agent {
	e.t.Helper()
	a, err := Open(e.state, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// do opens the agent, runs fn and closes the agent.
func (e *flowEnv) do(fn func(a *Agent) error) error {
	e.t.Helper()
	a := e.open()
	defer a.Close()
	return fn(a)
}

func (e *flowEnv) check() error {
	return e.do(func(a *Agent) error { _, err := a.Check(context.Background()); return err })
}

func (e *flowEnv) stage() error {
	return e.do(func(a *Agent) error { _, err := a.Stage(context.Background(), ""); return err })
}

func (e *flowEnv) apply(o ApplyOptions) error {
	return e.do(func(a *Agent) error { _, err := a.Apply(context.Background(), "", o); return err })
}

// install checks, stages and applies, and wants v current.
func (e *flowEnv) install(v string) {
	e.t.Helper()
	for _, op := range []func() error{e.check, e.stage, func() error { return e.apply(ApplyOptions{}) }} {
		if err := op(); err != nil {
			e.t.Fatal(err)
		}
	}
	if got := e.current(); got != v {
		e.t.Fatalf("current is %q, want %q", got, v)
	}
}

func (e *flowEnv) installDir() string { return filepath.Join(e.state, "install") }

func (e *flowEnv) current() string {
	v, _ := CurrentVersion(filepath.Join(e.installDir(), flowComp))
	return v
}

func (e *flowEnv) componentState() *ComponentState {
	e.t.Helper()
	var c *ComponentState
	e.do(func(a *Agent) error {
		st, err := a.loadState()
		if err != nil {
			e.t.Fatal(err)
		}
		c = st.Components[flowComp]
		return nil
	})
	return c
}

func (e *flowEnv) statusOfComp() ComponentStatus {
	e.t.Helper()
	var out ComponentStatus
	e.do(func(a *Agent) error {
		st, err := a.Status()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, c := range st.Components {
			if c.Name == flowComp {
				out = c
			}
		}
		return nil
	})
	return out
}

func flowHasNote(list []Notification, kind NoteKind) bool {
	for _, n := range list {
		if n.Kind == kind {
			return true
		}
	}
	return false
}

func flowAuditHas(entries []LogEntry, kind EventKind) bool {
	for _, le := range entries {
		if bytes.Contains(le.Entry, []byte(`"event":"`+string(kind)+`"`)) {
			return true
		}
	}
	return false
}
