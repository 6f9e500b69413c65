package publisher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/s3test"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// recorder is an upstream served over HTTP that records every request
// (path, Range, bytes sent) and may change what it serves.
type recorder struct {
	mu     sync.Mutex
	reqs   []request
	tamper func(w http.ResponseWriter, r *http.Request) bool // true: handled
	url    string
}

type request struct {
	path, rng string
	status    int
	bytes     int64
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
func (c *countingWriter) WriteHeader(s int)           { c.status = s; c.ResponseWriter.WriteHeader(s) }
func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = 200
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func newRecorder(t *testing.T, s publisher.Store) *recorder {
	rec := &recorder{}
	h := publisher.Handler(s, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		defer func() {
			rec.mu.Lock()
			rec.reqs = append(rec.reqs, request{r.URL.Path, r.Header.Get("Range"), cw.status, cw.n})
			rec.mu.Unlock()
		}()
		rec.mu.Lock()
		tamper := rec.tamper
		rec.mu.Unlock()
		if tamper != nil && tamper(cw, r) {
			return
		}
		h.ServeHTTP(cw, r)
	}))
	t.Cleanup(srv.Close)
	rec.url = srv.URL
	return rec
}

func (r *recorder) take() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

func (r *recorder) setTamper(fn func(w http.ResponseWriter, r *http.Request) bool) {
	r.mu.Lock()
	r.tamper = fn
	r.mu.Unlock()
}

func (r *recorder) source(t *testing.T) *publisher.HTTPSource {
	src, err := publisher.NewHTTPSource(r.url)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// mirrorFixture is an upstream repository and a mirror directory.
type mirrorFixture struct {
	*fixture
	root   []byte
	mirror *publisher.DirStore
	work   string
}

func newMirrorFixture(t *testing.T, bins int) *mirrorFixture {
	t.Helper()
	var f *fixture
	if bins == 0 {
		f = newFixture(t)
	} else {
		f = newBinsFixture(t, bins)
	}
	root, err := os.ReadFile(filepath.Join(f.store.Dir, "metadata", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &mirrorFixture{fixture: f, root: root, mirror: &publisher.DirStore{Dir: filepath.Join(f.dir, "mirror")}, work: filepath.Join(f.dir, "work")}
}

func newBinsFixture(t *testing.T, bins int) *fixture {
	t.Helper()
	dir := t.TempDir()
	if _, err := publisher.GenerateKeys(filepath.Join(dir, "keys"), "ed25519"); err != nil {
		t.Fatal(err)
	}
	keys, err := publisher.LoadKeys(filepath.Join(dir, "keys"), repo.TopLevelRoles...)
	if err != nil {
		t.Fatal(err)
	}
	pki := testutil.NewPKI(t)
	f := &fixture{dir: dir, keys: keys, pki: pki, store: &publisher.DirStore{Dir: filepath.Join(dir, "repo")}}
	if f.trust, err = signer.LoadTrust(pki.TrustDir); err != nil {
		t.Fatal(err)
	}
	if _, err := publisher.InitBins(context.Background(), f.store, keys, time.Now(), bins); err != nil {
		t.Fatal(err)
	}
	return f
}

func (m *mirrorFixture) release(t *testing.T, component, version, content string) {
	t.Helper()
	file := m.artifact(t, component+"-"+version+"/agent.bin", content, m.pki.Leaf)
	if _, err := m.add(publisher.ReleaseOptions{Component: component, Version: version, File: file, Channels: []string{"stable"}}); err != nil {
		t.Fatal(err)
	}
}

func (m *mirrorFixture) sync(t *testing.T, from publisher.MirrorSource, o publisher.MirrorOptions) (*publisher.MirrorResult, error) {
	t.Helper()
	o.Root = m.root
	if o.WorkDir == "" {
		o.WorkDir = m.work
	}
	return publisher.Mirror(context.Background(), from, m.mirror, o)
}

// verifiedTargets loads a repository as agents' code does (repo.Load) and
// checks that every target's file the mirror should hold is there with
// the signed bytes; it returns the paths of those it holds.
func verifiedTargets(t *testing.T, s publisher.Store, keep func(string) bool) []string {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Load(func(name string) ([]byte, error) {
		b, _, err := s.Read(ctx, "metadata/"+name, repo.MaxTargetsSize)
		return b, err
	})
	if err != nil {
		t.Fatalf("the mirror does not verify: %v", err)
	}
	all, err := r.AllTargets()
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for p, tf := range all {
		name := "targets/" + repo.ConsistentName(p, fmt.Sprintf("%x", []byte(tf.Hashes["sha256"])))
		ok, err := s.Exists(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if keep != nil && !keep(p) {
			if ok {
				t.Errorf("%s is on the mirror, but its component was not asked for", p)
			}
			continue
		}
		if !ok {
			t.Errorf("%s is missing on the mirror", name)
			continue
		}
		b, _, err := s.Read(ctx, name, tf.Length)
		if err != nil || tf.VerifyLengthHashes(b) != nil {
			t.Errorf("%s on the mirror is not the signed target: %v", name, err)
		}
		held = append(held, p)
	}
	slices.Sort(held)
	return held
}

func TestMirrorDirToDir(t *testing.T) {
	m := newMirrorFixture(t, 0)
	m.release(t, "notification-client", "1.0.0", "one")
	res, err := m.sync(t, publisher.StoreSource{Store: m.store}, publisher.MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Previous != 0 || res.TargetsCopied != 5 || res.Timestamp != 2 {
		t.Fatalf("first sync: %+v", res)
	}
	held := verifiedTargets(t, m.mirror, nil)
	if len(held) != 5 { // policy, artifact, signature, pointer, release index
		t.Fatalf("held %v", held)
	}
	// Nothing new: nothing copied, nothing changed.
	before := testutil.HashTree(t, m.mirror.Dir)
	res, err = m.sync(t, publisher.StoreSource{Store: m.store}, publisher.MirrorOptions{})
	if err != nil || res.Changed || res.TargetsCopied != 0 || res.Timestamp != 2 {
		t.Fatalf("second sync: %+v %v", res, err)
	}
	if testutil.HashTree(t, m.mirror.Dir) != before {
		t.Fatal("a sync with nothing new changed the mirror")
	}
	// The mirror is a repository: it can be mirrored again, and served.
	second := &publisher.DirStore{Dir: filepath.Join(m.dir, "mirror2")}
	if _, err := publisher.Mirror(context.Background(), publisher.StoreSource{Store: m.mirror}, second, publisher.MirrorOptions{Root: m.root, WorkDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	verifiedTargets(t, second, nil)
	srv := httptest.NewServer(publisher.Handler(m.mirror, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metadata/timestamp.json")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("serving the mirror: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestMirrorIncremental: a sync of one new release fetches the new
// metadata and only the new release's target files, over HTTP, in a
// repository with hashed bins; bins that did not change are not fetched.
func TestMirrorIncremental(t *testing.T) {
	m := newMirrorFixture(t, 16)
	for i := range 12 {
		m.release(t, "notification-client", fmt.Sprintf("1.0.%d", i), fmt.Sprintf("release %d", i))
	}
	rec := newRecorder(t, m.store)
	if _, err := m.sync(t, rec.source(t), publisher.MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.take()
	m.release(t, "notification-client", "1.1.0", strings.Repeat("new release ", 1000))
	res, err := m.sync(t, rec.source(t), publisher.MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	verifiedTargets(t, m.mirror, nil)
	var targetBytes int64
	var targets, metas []string
	for _, r := range rec.take() {
		if strings.HasPrefix(r.path, "/targets/") {
			targets = append(targets, r.path)
			targetBytes += r.bytes
		} else if r.status == 200 {
			metas = append(metas, strings.TrimPrefix(r.path, "/metadata/"))
		}
	}
	// The new release: artifact, signature, channel pointer, release index.
	if len(targets) != 4 || res.TargetsCopied != 4 || res.TargetBytes != targetBytes {
		t.Fatalf("targets fetched %v, result %+v", targets, res)
	}
	for _, p := range targets {
		if !strings.Contains(p, "1.1.0") && !strings.HasSuffix(p, "stable.json") && !strings.HasSuffix(p, "releases.json") {
			t.Errorf("fetched %s, which did not change", p)
		}
	}
	// timestamp, snapshot, and only the bins whose version changed.
	snapshot := 0
	for _, f := range metas {
		switch {
		case f == "timestamp.json":
		case strings.HasSuffix(f, ".snapshot.json"):
			snapshot++
		case strings.Contains(f, ".bins-"):
		default:
			t.Errorf("fetched metadata/%s, which did not change", f)
		}
	}
	if snapshot != 1 || len(metas) > 2+4 {
		t.Errorf("metadata fetched: %v", metas)
	}
}

// snapshotTree is the mirror's files and their content, to compare.
func snapshotTree(t *testing.T, dir string) string {
	t.Helper()
	return testutil.HashTree(t, dir)
}

// TestMirrorHostileUpstream: an upstream that serves something an agent
// would refuse fails the sync with a verification error (exit 3), and the
// mirror keeps its previous state, byte for byte, verifiable and servable.
func TestMirrorHostileUpstream(t *testing.T) {
	m := newMirrorFixture(t, 0)
	m.release(t, "notification-client", "1.0.0", "one")
	good, err := os.ReadFile(filepath.Join(m.store.Dir, "metadata", "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t, m.store)
	if _, err := m.sync(t, rec.source(t), publisher.MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	m.release(t, "notification-client", "1.1.0", "two")
	artifact := "/targets/notification-client/windows-amd64/1.1.0/"
	serve := func(body []byte) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool { w.Write(body); return true }
	}
	tests := []struct {
		name   string
		tamper func(w http.ResponseWriter, r *http.Request) bool
		prep   func(t *testing.T)
		want   string
	}{
		{name: "tampered target bytes", tamper: func(w http.ResponseWriter, r *http.Request) bool {
			if strings.HasPrefix(r.URL.Path, artifact) && strings.HasSuffix(r.URL.Path, ".bin") {
				w.Write([]byte("owt"))
				return true
			}
			return false
		}, want: "not the signed target"},
		{name: "bad timestamp signature", tamper: func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != "/metadata/timestamp.json" {
				return false
			}
			b, _ := os.ReadFile(filepath.Join(m.store.Dir, "metadata", "timestamp.json"))
			w.Write(bytes.Replace(b, []byte(`"version": 3`), []byte(`"version": 9`), 1))
			return true
		}, want: "bad signature"},
		{name: "rolled-back timestamp", prep: func(t *testing.T) {
			// The mirror first takes v3; upstream then serves v2 again.
			if _, err := m.sync(t, publisher.StoreSource{Store: m.store}, publisher.MirrorOptions{}); err != nil {
				t.Fatal(err)
			}
		}, tamper: func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path == "/metadata/timestamp.json" {
				return serve(good)(w, r)
			}
			return false
		}, want: "rollback"},
		{name: "mix-and-match snapshot", tamper: func(w http.ResponseWriter, r *http.Request) bool {
			// Each snapshot is answered with the one before it.
			var v int
			if _, err := fmt.Sscanf(r.URL.Path, "/metadata/%d.snapshot.json", &v); err != nil || v < 2 {
				return false
			}
			b, _ := os.ReadFile(filepath.Join(m.store.Dir, "metadata", fmt.Sprintf("%d.snapshot.json", v-1)))
			w.Write(b)
			return true
		}, want: "mix-and-match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prep != nil {
				tc.prep(t)
				m.release(t, "notification-client", "1.2.0", "three")
			}
			before := snapshotTree(t, filepath.Join(m.mirror.Dir, "metadata"))
			rec.setTamper(tc.tamper)
			defer rec.setTamper(nil)
			_, err := m.sync(t, rec.source(t), publisher.MirrorOptions{})
			if !errors.Is(err, repo.ErrVerification) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want a one-line verification failure saying %q", err, tc.want)
			}
			t.Log(err)
			// Verified target files of the new release may already be
			// there (targets come first, content-addressed, unreferenced);
			// what agents see, the metadata, is unchanged.
			if snapshotTree(t, filepath.Join(m.mirror.Dir, "metadata")) != before {
				t.Fatal("a refused sync changed the mirror's metadata")
			}
			if bad, _ := filepath.Glob(filepath.Join(m.mirror.Dir, "targets", "notification-client", "windows-amd64", "1.1.0", "*.agent.bin")); tc.name == "tampered target bytes" && len(bad) != 0 {
				t.Fatalf("the tampered target was stored: %v", bad)
			}
			verifiedTargets(t, m.mirror, nil)
		})
	}
}

// TestMirrorRefusesExpiredUpstream: a frozen upstream (an expired
// timestamp, even a newer one) is refused; the mirror keeps its state.
func TestMirrorRefusesExpiredUpstream(t *testing.T) {
	m := newMirrorFixture(t, 0)
	m.release(t, "notification-client", "1.0.0", "one")
	if _, err := m.sync(t, publisher.StoreSource{Store: m.store}, publisher.MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	before := snapshotTree(t, m.mirror.Dir)
	if _, err := publisher.Refresh(context.Background(), m.store, m.keys, time.Now().Add(-48*time.Hour), false); err != nil {
		t.Fatal(err)
	}
	_, err := m.sync(t, publisher.StoreSource{Store: m.store}, publisher.MirrorOptions{})
	if !errors.Is(err, repo.ErrVerification) || !strings.Contains(err.Error(), "freeze") {
		t.Fatalf("got %v, want a freeze refusal", err)
	}
	if snapshotTree(t, m.mirror.Dir) != before {
		t.Fatal("a refused sync changed the mirror")
	}
	// The same timestamp judged later, once it expired, is refused too.
	if _, err := m.sync(t, publisher.StoreSource{Store: m.mirror}, publisher.MirrorOptions{Now: time.Now().Add(48 * time.Hour)}); !errors.Is(err, repo.ErrVerification) {
		t.Fatalf("an expired, unchanged timestamp: %v", err)
	}
}

// TestMirrorRefusesOtherRoot: a mirror started from another repository's
// root refuses the upstream.
func TestMirrorRefusesOtherRoot(t *testing.T) {
	m := newMirrorFixture(t, 0)
	other := newMirrorFixture(t, 0)
	m.root = other.root
	_, err := m.sync(t, publisher.StoreSource{Store: m.store}, publisher.MirrorOptions{})
	if !errors.Is(err, repo.ErrVerification) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.mirror.Dir, "metadata", "timestamp.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused first sync published metadata")
	}
}

// TestMirrorResumes: a sync cut off in the middle of a target keeps the
// old state visible and the bytes it got; the next sync continues with a
// Range request and completes.
func TestMirrorResumes(t *testing.T) {
	m := newMirrorFixture(t, 0)
	m.release(t, "notification-client", "1.0.0", "one")
	rec := newRecorder(t, m.store)
	if _, err := m.sync(t, rec.source(t), publisher.MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	m.release(t, "notification-client", "1.1.0", big)
	before := snapshotTree(t, filepath.Join(m.mirror.Dir, "metadata"))
	rec.setTamper(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, ".bin") || !strings.Contains(r.URL.Path, "1.1.0") {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		w.WriteHeader(200)
		w.Write([]byte(big[:300<<10]))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the connection breaks mid-target
	})
	_, err := m.sync(t, rec.source(t), publisher.MirrorOptions{Parallel: 1})
	if err == nil || errors.Is(err, repo.ErrVerification) {
		t.Fatalf("an interrupted sync: %v", err)
	}
	if snapshotTree(t, filepath.Join(m.mirror.Dir, "metadata")) != before {
		t.Fatal("an interrupted sync changed what the mirror serves")
	}
	verifiedTargets(t, m.mirror, nil)
	rec.setTamper(nil)
	rec.take()
	res, err := m.sync(t, rec.source(t), publisher.MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ranged bool
	for _, r := range rec.take() {
		if strings.HasSuffix(r.path, ".bin") && r.rng != "" {
			ranged = r.rng == fmt.Sprintf("bytes=%d-", 300<<10) && r.status == http.StatusPartialContent
		}
	}
	if !ranged || res.TargetBytes >= int64(len(big)) {
		t.Fatalf("the second sync did not resume: %+v", res)
	}
	verifiedTargets(t, m.mirror, nil)
	if left, _ := filepath.Glob(filepath.Join(m.work, "*.partial")); len(left) != 0 {
		t.Fatalf("partial downloads left: %v", left)
	}
}

// TestMirrorComponents: --component copies those components' files (and
// the repository-wide ones), all the metadata, and nothing else.
func TestMirrorComponents(t *testing.T) {
	m := newMirrorFixture(t, 0)
	m.release(t, "notification-client", "1.0.0", "one")
	m.release(t, "remote-support", "2.0.0", "rs")
	res, err := m.sync(t, publisher.StoreSource{Store: m.store}, publisher.MirrorOptions{Components: []string{"remote-support"}})
	if err != nil {
		t.Fatal(err)
	}
	keep := func(p string) bool { return !strings.HasPrefix(p, "notification-client/") }
	held := verifiedTargets(t, m.mirror, keep)
	if res.TargetsSkipped != 4 || len(held) != 5 {
		t.Fatalf("result %+v, held %v", res, held)
	}
	// Asking for all components later copies the rest at the same timestamp.
	res, err = m.sync(t, publisher.StoreSource{Store: m.store}, publisher.MirrorOptions{})
	if err != nil || res.TargetsCopied != 4 {
		t.Fatalf("widened: %+v %v", res, err)
	}
	verifiedTargets(t, m.mirror, nil)
}

// TestMirrorS3: a directory repository mirrored into S3 verifies there;
// an object there whose length is not the signed one (written by hand) is
// fetched again, as on a directory mirror.
func TestMirrorS3(t *testing.T) {
	m := newMirrorFixture(t, 4)
	m.release(t, "notification-client", "1.0.0", strings.Repeat("one ", 1000))
	dst := s3Store(t, s3test.Fake(t))
	if _, err := publisher.Mirror(context.Background(), publisher.StoreSource{Store: m.store}, dst, publisher.MirrorOptions{Root: m.root, WorkDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	verifiedTargets(t, dst, nil)
	ctx := context.Background()
	names, err := dst.List(ctx, "targets/notification-client/")
	if err != nil {
		t.Fatal(err)
	}
	var artifact string
	for _, n := range names {
		if strings.HasSuffix(n, ".agent.bin") {
			artifact = n
		}
	}
	if artifact == "" {
		t.Fatalf("no artifact among %v", names)
	}
	if err := dst.Delete(ctx, artifact); err != nil {
		t.Fatal(err)
	}
	if err := dst.PutIfAbsent(ctx, artifact, strings.NewReader("cut"), 3); err != nil {
		t.Fatal(err)
	}
	m.release(t, "notification-client", "1.0.1", "two") // targets.json changes: every target is looked at
	res, err := publisher.Mirror(ctx, publisher.StoreSource{Store: m.store}, dst, publisher.MirrorOptions{Root: m.root, WorkDir: t.TempDir()})
	if err != nil || !res.Changed {
		t.Fatalf("%+v %v", res, err)
	}
	if res.TargetsCopied != 5 { // the replaced one, and 1.0.1's artifact, signature, pointer, index
		t.Fatalf("result %+v, want 5 targets copied", res)
	}
	if n, err := dst.(*publisher.S3Store).Size(ctx, artifact); err != nil || n != int64(len(strings.Repeat("one ", 1000))) {
		t.Fatalf("the cut object after the sync: %d bytes, %v", n, err)
	}
	verifiedTargets(t, dst, nil)
}

// TestHTTPSourcePlainHTTP: plain http only to loopback, as for agents.
func TestHTTPSourcePlainHTTP(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://updates.example.com/repo", true},
		{"http://127.0.0.1:8080/repo", true},
		{"http://[::1]:8080", true},
		{"http://updates.example.com/repo", false},
		{"http://10.0.0.5/repo", false},
	} {
		_, err := publisher.NewHTTPSource(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("publisher.NewHTTPSource(%s): %v, want ok %v", tc.url, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "plain http is refused") {
			t.Errorf("NewHTTPSource(%s): %v does not say why", tc.url, err)
		}
	}
}

// interleaver is an upstream whose two bodies of the same bytes (the
// target files x and y, in the order they are opened) are interleaved the
// way parallel downloads can be: x's first byte waits until y is being
// opened; y's opening waits until x has sent everything (before its end);
// x's end waits until y has started to read; y's bytes wait until x is
// done and closed.
type interleaver struct {
	publisher.MirrorSource
	match                     func(name string) bool
	mu                        sync.Mutex
	opened                    int
	yOpening, xAtEnd          chan struct{}
	yReading, xClosed         chan struct{}
	yOpenOnce, xEndOnce, yRdO sync.Once
}

func newInterleaver(src publisher.MirrorSource, match func(string) bool) *interleaver {
	return &interleaver{MirrorSource: src, match: match,
		yOpening: make(chan struct{}), xAtEnd: make(chan struct{}), yReading: make(chan struct{}), xClosed: make(chan struct{})}
}

func (il *interleaver) Open(ctx context.Context, name string, off int64) (io.ReadCloser, int64, error) {
	if !il.match(name) {
		return il.MirrorSource.Open(ctx, name, off)
	}
	il.mu.Lock()
	il.opened++
	role := il.opened
	il.mu.Unlock()
	if role == 2 {
		il.yOpenOnce.Do(func() { close(il.yOpening) })
		wait(ctx, il.xAtEnd)
	}
	rc, start, err := il.MirrorSource.Open(ctx, name, off)
	if err != nil {
		return rc, start, err
	}
	switch role {
	case 1:
		return &xBody{ReadCloser: rc, il: il, ctx: ctx}, start, nil
	case 2:
		return &yBody{ReadCloser: rc, il: il, ctx: ctx}, start, nil
	}
	return rc, start, nil
}

// wait waits for ch, or gives up (the test fails on what follows) if
// the sync never gets there.
func wait(ctx context.Context, ch chan struct{}) {
	select {
	case <-ch:
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
}

type xBody struct {
	io.ReadCloser
	il      *interleaver
	ctx     context.Context
	started bool
	once    sync.Once
}

func (b *xBody) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		wait(b.ctx, b.il.yOpening)
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && n == 0 {
		// Everything x sent is written by now.
		b.il.xEndOnce.Do(func() { close(b.il.xAtEnd) })
		wait(b.ctx, b.il.yReading)
	}
	return n, err
}

func (b *xBody) Close() error {
	b.once.Do(func() { close(b.il.xClosed) })
	return b.ReadCloser.Close()
}

type yBody struct {
	io.ReadCloser
	il  *interleaver
	ctx context.Context
}

func (b *yBody) Read(p []byte) (int, error) {
	b.il.yRdO.Do(func() {
		close(b.il.yReading)
		wait(b.ctx, b.il.xClosed)
	})
	return b.ReadCloser.Read(p)
}

// TestMirrorSameBytesTwoPlatforms: two targets with the same bytes (one
// artifact released for two platforms) downloaded at the same time do not
// share a partial file, and each is stored whole.
func TestMirrorSameBytesTwoPlatforms(t *testing.T) {
	m := newMirrorFixture(t, 0)
	content := strings.Repeat("the same artifact for both platforms ", 4096)
	file := m.artifact(t, "agent-1.0.0/agent.bin", content, m.pki.Leaf)
	for _, p := range []string{"linux-amd64", "windows-amd64"} {
		if _, err := m.add(publisher.ReleaseOptions{Component: "notification-client", Version: "1.0.0", Platform: p, File: file, Channels: []string{"stable"}}); err != nil {
			t.Fatal(err)
		}
	}
	src := newInterleaver(publisher.StoreSource{Store: m.store}, func(name string) bool { return strings.HasSuffix(name, ".agent.bin") })
	if _, err := m.sync(t, src, publisher.MirrorOptions{Parallel: 4}); err != nil {
		t.Fatal(err)
	}
	if src.opened != 2 {
		t.Fatalf("the artifact was opened %d times upstream, want once per platform", src.opened)
	}
	held := verifiedTargets(t, m.mirror, nil)
	if len(held) != 9 { // policy; per platform artifact, signature, pointer, release index
		t.Fatalf("held %v", held)
	}
	if left, _ := filepath.Glob(filepath.Join(m.work, "*.partial")); len(left) != 0 {
		t.Fatalf("partial downloads left: %v", left)
	}
}

// TestMirrorReplacesWrongLengthObject: a target file on the mirror whose
// length is not the signed one (cut short by a crash or by hand) is not
// taken as present: the next sync that looks at it fetches it again.
func TestMirrorReplacesWrongLengthObject(t *testing.T) {
	m := newMirrorFixture(t, 0)
	m.release(t, "notification-client", "1.0.0", strings.Repeat("one ", 1000))
	if _, err := m.sync(t, publisher.StoreSource{Store: m.store}, publisher.MirrorOptions{}); err != nil {
		t.Fatal(err)
	}
	short, err := filepath.Glob(filepath.Join(m.mirror.Dir, "targets", "notification-client", "windows-amd64", "1.0.0", "*.agent.bin"))
	if err != nil || len(short) != 1 {
		t.Fatalf("the artifact on the mirror: %v %v", short, err)
	}
	if err := os.Truncate(short[0], 100); err != nil {
		t.Fatal(err)
	}
	m.release(t, "notification-client", "1.1.0", "two") // targets.json changes: every target is looked at
	res, err := m.sync(t, publisher.StoreSource{Store: m.store}, publisher.MirrorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	verifiedTargets(t, m.mirror, nil)
	if res.TargetsCopied != 5 { // the replaced one, and 1.1.0's artifact, signature, pointer, index
		t.Fatalf("result %+v", res)
	}
}

// TestHTTPSourceMinRate: an upstream that sends a target a byte at a time
// (never idle for long, far too slow) fails the sync as too slow (a
// network failure, not a verification one); the mirror keeps its state.
func TestHTTPSourceMinRate(t *testing.T) {
	m := newMirrorFixture(t, 0)
	m.release(t, "notification-client", "1.0.0", strings.Repeat("one ", 1000))
	rec := newRecorder(t, m.store)
	rec.setTamper(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, ".agent.bin") {
			return false
		}
		b, err := os.ReadFile(filepath.Join(m.store.Dir, filepath.FromSlash(r.URL.Path)))
		if err != nil {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		// A byte every 20 ms, for a while; then the rest, so that a
		// source without the rule gets the whole file.
		for i := range 100 {
			if _, err := w.Write(b[i : i+1]); err != nil || rc.Flush() != nil {
				return true
			}
			select {
			case <-r.Context().Done():
				return true
			case <-time.After(20 * time.Millisecond):
			}
		}
		w.Write(b[100:])
		return true
	})
	src := rec.source(t)
	src.MinRate, src.MinRateWindow = 1000, 200*time.Millisecond // 200 bytes per 200 ms of waiting
	_, err := m.sync(t, src, publisher.MirrorOptions{})
	if !errors.Is(err, publisher.ErrTooSlow) || errors.Is(err, repo.ErrVerification) || !strings.Contains(err.Error(), "too slow") {
		t.Fatalf("a trickling upstream: %v", err)
	}
	t.Log(err)
	if _, err := os.Stat(filepath.Join(m.mirror.Dir, "metadata", "timestamp.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a sync that failed published metadata")
	}
}

// TestHTTPSourceRedirects: the upstream may redirect to its own host (any
// port) or to a host of AllowHosts, as an agent may; anywhere else is
// refused.
func TestHTTPSourceRedirects(t *testing.T) {
	m := newMirrorFixture(t, 0)
	m.release(t, "notification-client", "1.0.0", "one")
	other := httptest.NewServer(publisher.Handler(m.store, nil))
	defer other.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(other.URL, "http://"), ":")
	elsewhere := "http://localhost:" + port // the same server, by another host name
	rec := newRecorder(t, m.store)
	redirectTo := func(base string) {
		rec.setTamper(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path != "/metadata/timestamp.json" {
				return false
			}
			http.Redirect(w, r, base+r.URL.Path, http.StatusFound)
			return true
		})
	}
	redirectTo(elsewhere)
	_, err := m.sync(t, rec.source(t), publisher.MirrorOptions{})
	if err == nil || !strings.Contains(err.Error(), "refusing a redirect") || !strings.Contains(err.Error(), "not the upstream's host") {
		t.Fatalf("a redirect to another host: %v", err)
	}
	// The same host, another port: allowed.
	redirectTo(other.URL)
	if _, err := m.sync(t, rec.source(t), publisher.MirrorOptions{}); err != nil {
		t.Fatalf("a redirect to the same host: %v", err)
	}
	// Another host that is allowed.
	m.release(t, "notification-client", "1.0.1", "two")
	redirectTo(elsewhere)
	src := rec.source(t)
	src.AllowHosts = []string{"LOCALHOST"}
	res, err := m.sync(t, src, publisher.MirrorOptions{})
	if err != nil || !res.Changed {
		t.Fatalf("a redirect to an allowed host: %+v %v", res, err)
	}
}
