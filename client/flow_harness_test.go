package client

// A small in-package harness for flow tests: a real TUF repository made and
// changed with the bcpublish command (built once per test binary from this
// checkout), served by `bcpublish serve` on 127.0.0.1 behind a front that
// records requests and can answer some itself, and an agent state
// directory initialized against it (the same shape as
// internal/e2e/harness_test.go, which is another package).
//
// Package client never imports package publisher or the AWS SDK, not even
// in its tests (docs/design.md; cmd/bcagent's TestClientDependencies checks
// it with go list -test -deps): the publisher is driven only through its
// command line, as an operator drives it.
//
// The bcpublish processes are started by a helper process (this test
// binary run again, see TestMain), never by the test process itself: a
// child forked while an agent of a parallel test holds its state
// directory's lock keeps a copy of the lock until it execs, and that test
// would then see another agent (ErrLocked). The helper is started before
// any test runs, so it holds no agent's lock.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

const (
	flowComp     = "notification-client"
	flowPlatform = "linux-amd64"
)

// spawnerEnv set to 1 makes the test binary the helper that runs the
// flow tests' commands (TestMain).
const spawnerEnv = "BCUPDATE_CLIENT_TEST_SPAWNER"

// flowSpawner runs the flow tests' commands; TestMain starts it.
var flowSpawner *spawner

func TestMain(m *testing.M) {
	if os.Getenv(spawnerEnv) == "1" {
		os.Exit(runSpawner(os.Stdin, os.Stdout))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	sp, err := startSpawner()
	if err != nil {
		fmt.Fprintf(os.Stderr, "client tests: starting the command helper: %v\n", err)
		return 1
	}
	flowSpawner = sp
	defer sp.close()
	return m.Run()
}

// bcpublishBin is the bcpublish binary the flow tests use, built once.
var bcpublishBin = sync.OnceValues(func() (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the flow tests build bcpublish and need the go command: %w", err)
	}
	out := filepath.Join(flowSpawner.dir, "bcpublish")
	res, err := flowSpawner.call(spawnReq{Op: "run", Argv: []string{gobin, "build", "-o", out, "github.com/beckmanconnect/bcupdate/cmd/bcpublish"}})
	if err != nil {
		return "", err
	}
	if res.Code != 0 {
		return "", fmt.Errorf("go build ./cmd/bcpublish: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	return out, nil
})

type flowEnv struct {
	t       *testing.T
	dir     string
	keysDir string // role keys, from bcpublish keys generate
	repoDir string // the repository, made by bcpublish init
	world   *testutil.World
	// codeCert and codeKey are the code-signing leaf's chain and key,
	// for bcpublish's --codesign-cert and --codesign-key.
	codeCert, codeKey string
	srv               *httptest.Server
	state             string

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
	world := testutil.NewWorld(t)
	world.PKI.TrustDir = world.TrustDir
	e := &flowEnv{t: t, dir: dir, keysDir: filepath.Join(dir, "keys"), repoDir: filepath.Join(dir, "repo"), world: world,
		codeCert: filepath.Join(dir, "codesign-chain.pem"), codeKey: filepath.Join(dir, "codesign.key"), state: filepath.Join(dir, "agent")}
	testutil.WriteCerts(t, e.codeCert, world.PKI.Leaf.Chain...)
	testutil.WriteKey(t, e.codeKey, world.PKI.Leaf.Key)
	e.mustBcpublish("keys", "generate", "--out", e.keysDir, "--type", signer.KeyTypeEd25519)
	e.mustBcpublish("init", "--repo", e.repoDir, "--keys", e.keysDir)
	backend := e.serve()
	// The front passes each request on as the agent made it (no gzip
	// of its own) and answers what bcpublish serve answers.
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	proxy := httputil.NewSingleHostReverseProxy(backend)
	proxy.Transport = tr
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.paths = append(e.paths, r.URL.Path)
		e.hdrs = append(e.hdrs, r.Header.Clone())
		hook := e.hook
		e.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
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

// bcpublish runs bcpublish with args and returns its standard output, or
// an error with its exit code and standard error.
func (e *flowEnv) bcpublish(args ...string) (string, error) {
	e.t.Helper()
	bin, err := bcpublishBin()
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := flowSpawner.call(spawnReq{Op: "run", Argv: append([]string{bin}, args...)})
	if err != nil {
		e.t.Fatal(err)
	}
	if res.Code != 0 {
		return res.Stdout, fmt.Errorf("bcpublish %s: exit %d: %s", strings.Join(args, " "), res.Code, strings.TrimSpace(res.Stderr))
	}
	return res.Stdout, nil
}

func (e *flowEnv) mustBcpublish(args ...string) string {
	e.t.Helper()
	out, err := e.bcpublish(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

var servingRE = regexp.MustCompile(` at (http://127\.0\.0\.1:[0-9]+) `)

// serve starts `bcpublish serve` on the repository, on a free port of
// 127.0.0.1, and returns its URL; it is stopped when the test ends.
func (e *flowEnv) serve() *url.URL {
	e.t.Helper()
	bin, err := bcpublishBin()
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := flowSpawner.call(spawnReq{Op: "start", Argv: []string{bin, "serve", "--repo", e.repoDir, "--addr", "127.0.0.1:0"}})
	if err != nil {
		e.t.Fatal(err)
	}
	if res.Code != 0 {
		e.t.Fatalf("bcpublish serve: exit %d: %s", res.Code, res.Stderr)
	}
	e.t.Cleanup(func() {
		if r, err := flowSpawner.call(spawnReq{Op: "stop", Proc: res.ID}); err != nil || r.Code != 0 {
			e.t.Errorf("bcpublish serve did not stop cleanly: %v %+v", err, r)
		}
	})
	m := servingRE.FindStringSubmatch(res.Stdout)
	if m == nil {
		e.t.Fatalf("bcpublish serve printed %q, want its URL", res.Stdout)
	}
	u, err := url.Parse(m[1])
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *flowEnv) config() Config {
	return Config{
		RepositoryURL: e.srv.URL, Components: []string{flowComp}, Platform: flowPlatform,
		Channel: "stable", DeviceID: "INST-0042", DeviceModel: "Navios EX", TrustDir: e.world.TrustDir,
	}
}

func (e *flowEnv) rootFile() string { return filepath.Join(e.repoDir, "metadata", "1.root.json") }

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

// flowReleaseOptions are what a flow test may set of a release, each
// given to bcpublish release add as its flag.
type flowReleaseOptions struct {
	Component   string         // --component (default flowComp)
	Install     string         // --install
	Installer   []string       // --installer, words
	HealthCheck []string       // --health-check, words
	DeltaFrom   []string       // --delta-from
	Features    []repo.Feature // --feature and --feature-text
}

// flowRelease is what was published: the artifact's sha256 and length.
type flowRelease struct {
	SHA256 string
	Length int64
}

// publish releases version v (a tarball) with features.
func (e *flowEnv) publish(v string, features ...repo.Feature) flowRelease {
	e.t.Helper()
	return e.publishWith(v, flowArtifact(v), flowTarball(e.t, v), func(o *flowReleaseOptions) { o.Features = features })
}

// publishWith code-signs data and publishes it with bcpublish release add.
func (e *flowEnv) publishWith(v, name string, data []byte, mutate func(*flowReleaseOptions)) flowRelease {
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
	o := flowReleaseOptions{Component: flowComp}
	if mutate != nil {
		mutate(&o)
	}
	args := []string{"release", "add", "--repo", e.repoDir, "--keys", e.keysDir, "--trust", e.world.TrustDir,
		"--component", o.Component, "--version", v, "--platform", flowPlatform, "--file", f,
		"--codesign-cert", e.codeCert, "--codesign-key", e.codeKey}
	if o.Install != "" {
		args = append(args, "--install", o.Install)
	}
	if len(o.Installer) > 0 {
		args = append(args, "--installer", strings.Join(o.Installer, " "))
	}
	if len(o.HealthCheck) > 0 {
		args = append(args, "--health-check", strings.Join(o.HealthCheck, " "))
	}
	for _, from := range o.DeltaFrom {
		args = append(args, "--delta-from", from)
	}
	for _, ft := range o.Features {
		spec := ft.ID
		if ft.Consent != "" {
			spec += ":" + ft.Consent
		}
		// The title is the file's first line, the description the rest.
		text := filepath.Join(filepath.Dir(f), "feature-"+ft.ID+".txt")
		if err := os.WriteFile(text, []byte(ft.Title+"\n"+ft.Description+"\n"), 0o644); err != nil {
			e.t.Fatal(err)
		}
		args = append(args, "--feature", spec, "--feature-text", ft.ID+"="+text)
	}
	e.mustBcpublish(args...)
	sum := sha256.Sum256(data)
	return flowRelease{SHA256: hex.EncodeToString(sum[:]), Length: int64(len(data))}
}

// roleKeys loads the repository's role keys (bcpublish keys generate's
// files) for a test that signs metadata itself with package repo.
func (e *flowEnv) roleKeys(roles ...string) repo.Keys {
	e.t.Helper()
	keys := repo.Keys{}
	for _, role := range roles {
		s, err := signer.LoadRoleSigner(filepath.Join(e.keysDir, role+".key"))
		if err != nil {
			e.t.Fatal(err)
		}
		keys[role] = append(keys[role], s)
	}
	return keys
}

// readMetadata reads a metadata file of the repository, for repo.Load.
func (e *flowEnv) readMetadata(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(e.repoDir, "metadata", name))
}

// writeMetadata writes metadata files into the repository, timestamp.json
// last (as the publisher does).
func (e *flowEnv) writeMetadata(files []repo.File) {
	e.t.Helper()
	var last *repo.File
	for i, f := range files {
		if f.Name == "timestamp.json" {
			last = &files[i]
			continue
		}
		if err := os.WriteFile(filepath.Join(e.repoDir, "metadata", f.Name), f.Data, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	if last != nil {
		if err := os.WriteFile(filepath.Join(e.repoDir, "metadata", last.Name), last.Data, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
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

// The command helper. The test process sends it requests, one JSON object
// a line, on its standard input, and reads its answers, tagged with the
// request's id, on its standard output.

// spawnReq asks the helper to run a command to its end ("run"), to start
// one and answer with its first line of output ("start"), or to stop one
// it started ("stop", Proc: the id of the "start").
type spawnReq struct {
	ID   int64    `json:"id"`
	Op   string   `json:"op"`
	Argv []string `json:"argv,omitempty"`
	Proc int64    `json:"proc,omitempty"`
}

// spawnResp is the helper's answer: the command's exit code and output,
// or Err when it could not be run at all.
type spawnResp struct {
	ID     int64  `json:"id"`
	Code   int    `json:"code"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Err    string `json:"err,omitempty"`
}

// spawner is the test process's end of the helper.
type spawner struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	dir string // a temporary directory for what the tests build

	wmu  sync.Mutex // one request line at a time
	mu   sync.Mutex
	next int64
	wait map[int64]chan spawnResp
	gone error // set when the helper's output ends
}

// startSpawner runs this test binary again as the helper.
func startSpawner() (*spawner, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "client-test-bin-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), spawnerEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &spawner{cmd: cmd, in: in, dir: dir, wait: map[int64]chan spawnResp{}}
	go s.read(out)
	return s, nil
}

func (s *spawner) read(out io.Reader) {
	dec := json.NewDecoder(out)
	for {
		var r spawnResp
		if err := dec.Decode(&r); err != nil {
			s.mu.Lock()
			s.gone = fmt.Errorf("the command helper stopped answering: %v", err)
			for id, c := range s.wait {
				close(c)
				delete(s.wait, id)
			}
			s.mu.Unlock()
			return
		}
		s.mu.Lock()
		c := s.wait[r.ID]
		delete(s.wait, r.ID)
		s.mu.Unlock()
		if c != nil {
			c <- r
		}
	}
}

// call sends q and waits for its answer.
func (s *spawner) call(q spawnReq) (spawnResp, error) {
	c := make(chan spawnResp, 1)
	s.mu.Lock()
	if s.gone != nil {
		s.mu.Unlock()
		return spawnResp{}, s.gone
	}
	s.next++
	q.ID = s.next
	s.wait[q.ID] = c
	s.mu.Unlock()
	line, err := json.Marshal(q)
	if err != nil {
		return spawnResp{}, err
	}
	s.wmu.Lock()
	_, err = s.in.Write(append(line, '\n'))
	s.wmu.Unlock()
	if err != nil {
		return spawnResp{}, fmt.Errorf("the command helper: %w", err)
	}
	r, ok := <-c
	if !ok {
		s.mu.Lock()
		defer s.mu.Unlock()
		return spawnResp{}, s.gone
	}
	if r.Err != "" {
		return r, fmt.Errorf("%s: %s", strings.Join(q.Argv, " "), r.Err)
	}
	return r, nil
}

// close ends the helper (which stops what it started) and removes what
// the tests built.
func (s *spawner) close() {
	s.in.Close()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(s.dir)
}

// runSpawner is the helper: it answers requests until its input ends,
// then stops every command it started and still runs.
func runSpawner(in io.Reader, out io.Writer) int {
	var wmu sync.Mutex
	enc := json.NewEncoder(out)
	reply := func(r spawnResp) {
		wmu.Lock()
		defer wmu.Unlock()
		enc.Encode(r)
	}
	var pmu sync.Mutex
	procs := map[int64]*spawned{}
	var wg sync.WaitGroup
	dec := json.NewDecoder(in)
	for {
		var q spawnReq
		if err := dec.Decode(&q); err != nil {
			break
		}
		if q.Op != "stop" && len(q.Argv) == 0 {
			reply(spawnResp{ID: q.ID, Err: "no command"})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch q.Op {
			case "run":
				reply(spawnRun(q))
			case "start":
				p, r := spawnStart(q)
				if p != nil {
					pmu.Lock()
					procs[q.ID] = p
					pmu.Unlock()
				}
				reply(r)
			case "stop":
				pmu.Lock()
				p := procs[q.Proc]
				delete(procs, q.Proc)
				pmu.Unlock()
				if p == nil {
					reply(spawnResp{ID: q.ID, Err: fmt.Sprintf("no process %d", q.Proc)})
					return
				}
				r := p.stop()
				r.ID = q.ID
				reply(r)
			default:
				reply(spawnResp{ID: q.ID, Err: "unknown op " + q.Op})
			}
		}()
	}
	wg.Wait()
	pmu.Lock()
	for _, p := range procs {
		p.stop()
	}
	pmu.Unlock()
	return 0
}

// spawned is a command the helper started and has not stopped.
type spawned struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer // read only once done is closed
	done   chan struct{}
	err    error // of Wait, once done is closed
}

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	}
	return -1
}

func spawnRun(q spawnReq) spawnResp {
	cmd := exec.Command(q.Argv[0], q.Argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return spawnResp{ID: q.ID, Err: err.Error()}
	}
	return spawnResp{ID: q.ID, Code: exitCode(err), Stdout: stdout.String(), Stderr: stderr.String()}
}

func spawnStart(q spawnReq) (*spawned, spawnResp) {
	cmd := exec.Command(q.Argv[0], q.Argv[1:]...)
	p := &spawned{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, spawnResp{ID: q.ID, Err: err.Error()}
	}
	if err := cmd.Start(); err != nil {
		return nil, spawnResp{ID: q.ID, Err: err.Error()}
	}
	first := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		first <- line
		io.Copy(io.Discard, br)
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case line := <-first:
		if line != "" {
			return p, spawnResp{ID: q.ID, Stdout: line}
		}
		<-p.done
		code := exitCode(p.err)
		if code == 0 {
			code = -1
		}
		return nil, spawnResp{ID: q.ID, Code: code, Stderr: "exited before printing anything\n" + p.stderr.String()}
	case <-time.After(time.Minute):
		p.stop()
		return nil, spawnResp{ID: q.ID, Err: "printed nothing within a minute: " + p.stderr.String()}
	}
}

// stop interrupts the command (killing it if it is still there after ten
// seconds) and returns how it ended.
func (p *spawned) stop() spawnResp {
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return spawnResp{Code: exitCode(p.err), Stderr: p.stderr.String()}
}
