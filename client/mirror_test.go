package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// serveDir starts `bcpublish serve` on dir (a site mirror) and returns its
// URL; it is stopped when the test ends.
func (e *flowEnv) serveDir(dir string) string {
	e.t.Helper()
	bin, err := bcpublishBin()
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := flowSpawner.call(spawnReq{Op: "start", Argv: []string{bin, "serve", "--repo", dir, "--addr", "127.0.0.1:0"}})
	if err != nil {
		e.t.Fatal(err)
	}
	if res.Code != 0 {
		e.t.Fatalf("bcpublish serve: exit %d: %s", res.Code, res.Stderr)
	}
	e.t.Cleanup(func() { flowSpawner.call(spawnReq{Op: "stop", Proc: res.ID}) })
	m := servingRE.FindStringSubmatch(res.Stdout)
	if m == nil {
		e.t.Fatalf("bcpublish serve printed %q, want its URL", res.Stdout)
	}
	return m[1]
}

// reinit sets the agent up afresh in another state directory, with the
// configuration mutate makes of the harness's.
func (e *flowEnv) reinit(mutate func(*Config)) {
	e.t.Helper()
	cfg := e.config()
	mutate(&cfg)
	e.state = filepath.Join(e.t.TempDir(), "agent")
	if err := Init(e.state, InitOptions{RootFile: e.rootFile(), Config: cfg}); err != nil {
		e.t.Fatal(err)
	}
}

// deadURL is a loopback URL nothing listens on (connection refused).
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

func (e *flowEnv) repositoryStatus() RepositoryStatus {
	e.t.Helper()
	var out RepositoryStatus
	e.do(func(a *Agent) error {
		st, err := a.Status()
		if err != nil {
			e.t.Fatal(err)
		}
		out = st.Repository
		return nil
	})
	return out
}

// TestMirrorAgentInstallsFromSiteMirror: a site mirror kept by bcpublish
// mirror and served by bcpublish serve is a repository an agent installs
// from exactly as from the source, and never touches the source.
func TestMirrorAgentInstallsFromSiteMirror(t *testing.T) {
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	mirrorDir := filepath.Join(e.dir, "mirror")
	sync := func() {
		e.mustBcpublish("mirror", "--from", e.srv.URL, "--to", mirrorDir, "--root", e.rootFile())
	}
	sync()
	site := e.serveDir(mirrorDir)
	e.reinit(func(c *Config) { c.RepositoryURL = site })
	e.takeRequests()
	e.install("1.0.0")
	e.publish("1.1.0")
	sync()
	e.takeRequests()
	e.install("1.1.0")
	if paths, _ := e.takeRequests(); len(paths) != 0 {
		t.Fatalf("the agent went to the source repository: %v", paths)
	}
}

// TestMirrorAgentFailover: an agent with several mirrors uses the first
// that works; one that refuses connections, answers 500 or serves bytes
// that do not verify is skipped, and status says which was used and why
// the others were not.
func TestMirrorAgentFailover(t *testing.T) {
	tests := []struct {
		name  string
		first func(t *testing.T, good string) string
		kind  CheckFailure
		why   string
	}{
		{"connection refused", func(t *testing.T, _ string) string { return deadURL(t) }, CheckUnreachable, "connection refused"},
		{"500", func(t *testing.T, _ string) string {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "broken", http.StatusInternalServerError)
			}))
			t.Cleanup(srv.Close)
			return srv.URL
		}, CheckUnreachable, "HTTP status 500"},
		{"tampered artifact", func(t *testing.T, good string) string {
			// Serves the good repository, but every artifact's bytes
			// changed: metadata verifies, the download does not.
			u, _ := url.Parse(good)
			proxy := httputil.NewSingleHostReverseProxy(u)
			proxy.ModifyResponse = func(resp *http.Response) error {
				if strings.HasSuffix(resp.Request.URL.Path, ".tar.gz") {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					b[len(b)/2] ^= 0xff
					resp.Body = io.NopCloser(bytes.NewReader(b))
				}
				return nil
			}
			srv := httptest.NewServer(proxy)
			t.Cleanup(srv.Close)
			return srv.URL
		}, CheckVerification, "does not match the signed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newFlowEnv(t, nil)
			good := e.srv.URL
			first := tc.first(t, good)
			e.reinit(func(c *Config) { c.RepositoryURL, c.RepositoryMirrors = first, []string{good} })
			e.publish("1.0.0")
			e.install("1.0.0")
			rs := e.repositoryStatus()
			m := rs.Mirror
			if m == nil || m.Used != good || len(m.Failed) != 1 || m.Failed[0].URL != first || m.Failed[0].Kind != tc.kind || !strings.Contains(m.Failed[0].Error, tc.why) {
				t.Fatalf("status: %+v %+v", rs, m)
			}
			if len(rs.Mirrors) != 2 || rs.Mirrors[0] != first {
				t.Fatalf("configured mirrors %v", rs.Mirrors)
			}
		})
	}
}

// TestMirrorAgentAllDown: when no mirror can be used, the error names each
// one and why, and the check is a network failure (exit 1).
func TestMirrorAgentAllDown(t *testing.T) {
	e := newFlowEnv(t, nil)
	a, b := deadURL(t), deadURL(t)
	e.reinit(func(c *Config) { c.RepositoryURL, c.RepositoryMirrors = a, []string{b} })
	err := e.check()
	if err == nil || !isNetwork(err) || errors.Is(err, ErrVerification) {
		t.Fatalf("check: %v", err)
	}
	for _, want := range []string{a + ": connection refused", b + ": connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	m := e.repositoryStatus().Mirror
	if m == nil || m.Used != "" || len(m.Failed) != 2 {
		t.Fatalf("status: %+v", m)
	}
}

// TestMirrorConfig: repository_mirrors is checked as repository_url is;
// a config.json from before (one repository_url) still loads.
func TestMirrorConfig(t *testing.T) {
	base := Config{RepositoryURL: "https://updates.example", Components: []string{"nc"}, Platform: "linux-amd64", Channel: "stable",
		DeviceID: "INST-1", DeviceModel: "Navios EX", TrustDir: "/trust", InstallRoot: "/install"}
	for _, tc := range []struct {
		mirrors []string
		want    string
	}{
		{nil, ""},
		{[]string{"https://mirror.lab.example/repo"}, ""},
		{[]string{"http://mirror.lab.example"}, "plain http is refused"},
		{[]string{"https://updates.example"}, "given twice"},
		{[]string{"ftp://x"}, "want https://host/path"},
	} {
		c := base
		c.RepositoryMirrors = tc.mirrors
		err := c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "repository_mirrors") || !errors.Is(err, ErrUsage))) {
			t.Errorf("%v: %v, want %q", tc.mirrors, err, tc.want)
		}
	}
	if got := base.RepositoryURLs(); len(got) != 1 || got[0] != base.RepositoryURL {
		t.Fatalf("one repository: %v", got)
	}
}

// hostileCutter is a mirror that serves good's repository, except that
// each artifact request gets wrong bytes (the first of what it sends
// flipped) and then the connection is cut half way through the body: a
// mirror that would have the next one's resumed download fail its hashes.
func hostileCutter(t *testing.T, good string) string {
	u, _ := url.Parse(good)
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".tar.gz") {
			proxy.ServeHTTP(w, r)
			return
		}
		resp, err := http.Get(good + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var off int
		status := http.StatusOK
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &off); err == nil && off > 0 && off < len(body) {
			status = http.StatusPartialContent
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, len(body)-1, len(body)))
		} else {
			off = 0
		}
		rest := append([]byte{}, body[off:]...)
		rest[0] ^= 0xff
		w.Header().Set("Content-Length", strconv.Itoa(len(rest)))
		w.WriteHeader(status)
		w.Write(rest[:len(rest)/2+1])
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the connection breaks mid-body
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestMirrorAgentHostileCutDoesNotBlameNext: a mirror that sends wrong
// bytes and then cuts the connection cannot get the next, honest mirror
// blamed: the next one's download does not build on the bytes of the one
// that failed, so the stage succeeds from it, and status names the
// hostile mirror as the one that failed.
func TestMirrorAgentHostileCutDoesNotBlameNext(t *testing.T) {
	e := newFlowEnv(t, nil)
	good := e.srv.URL
	bad := hostileCutter(t, good)
	e.reinit(func(c *Config) { c.RepositoryURL, c.RepositoryMirrors = bad, []string{good} })
	e.publishWith("1.0.0", flowArtifact("1.0.0"), testutil.TarGz(t,
		testutil.TarEntry{Name: "bin/notification-client", Body: "#!/bin/sh\necho 1.0.0\n", Mode: 0o755},
		testutil.TarEntry{Name: "data.bin", Body: strings.Repeat("0123456789abcdef", 4096)},
		testutil.TarEntry{Name: "VERSION", Body: "1.0.0\n"}), nil)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	m := e.repositoryStatus().Mirror
	if m == nil || m.Used != good || len(m.Failed) != 1 || m.Failed[0].URL != bad ||
		(m.Failed[0].Kind != CheckUnreachable && m.Failed[0].Kind != CheckVerification) {
		t.Fatalf("status %+v", m)
	}
	if c := e.componentState(); c.Staged == nil || c.Staged.Version != "1.0.0" {
		t.Fatalf("staged %+v", c.Staged)
	}
}

// TestMirrorAgentStalePartial: bytes kept from an earlier stage (which
// mirror sent them is not known) that make the resumed download fail its
// hashes are dropped and the file fetched once more whole from the same
// mirror before that mirror is blamed.
func TestMirrorAgentStalePartial(t *testing.T) {
	e := newFlowEnv(t, nil)
	good := e.srv.URL
	dead := deadURL(t)
	e.reinit(func(c *Config) { c.RepositoryURL, c.RepositoryMirrors = dead, []string{good} })
	data := testutil.TarGz(t, testutil.TarEntry{Name: "data.bin", Body: strings.Repeat("0123456789abcdef", 8192)},
		testutil.TarEntry{Name: "VERSION", Body: "1.0.0\n"})
	res := e.publishWith("1.0.0", flowArtifact("1.0.0"), data, nil)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.state, "staging", flowComp, "1.0.0")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := append([]byte{}, data[:len(data)/2]...)
	stale[10] ^= 0xff // what some mirror sent before it went away
	os.WriteFile(filepath.Join(dir, "release.sha256"), []byte(res.SHA256+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, flowArtifact("1.0.0")+".partial"), stale, 0o600)
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	m := e.repositoryStatus().Mirror
	if m == nil || m.Used != good || len(m.Failed) != 1 || m.Failed[0].URL != dead {
		t.Fatalf("status %+v", m)
	}
	c := e.componentState()
	if got, err := os.ReadFile(c.Staged.File); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("staged file differs (%d bytes, %v)", len(got), err)
	}
}
