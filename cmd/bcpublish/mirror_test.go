package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// syncBuffer is an output several goroutines write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCLIMirror: bcpublish mirror's bad inputs are one-line errors with the
// documented exit codes and write nothing; a good sync verifies, and the
// loop syncs until it is interrupted.
func TestCLIMirror(t *testing.T) {
	dir := t.TempDir()
	up := upstreamRepo(t, dir, []byte("artifact"))
	art := filepath.Join(dir, "nc.bin")
	root := filepath.Join(up, "metadata", "1.root.json")
	mirror := filepath.Join(dir, "mirror")
	readonly := filepath.Join(dir, "readonly")
	os.MkdirAll(readonly, 0o555)
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	emptyRoot := filepath.Join(dir, "empty.root.json")
	if err := os.WriteFile(emptyRoot, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no flags", []string{"mirror"}, 2, "--from, --to and --root are required"},
		{"no --to", []string{"mirror", "--from", up, "--root", root}, 2, "--to"},
		{"bad interval", []string{"mirror", "--from", up, "--to", mirror, "--root", root, "--interval", "soon"}, 2, "--interval \"soon\": want a duration from 10s to 168h"},
		{"interval too short", []string{"mirror", "--from", up, "--to", mirror, "--root", root, "--interval", "1s"}, 2, "--interval"},
		{"bad component", []string{"mirror", "--from", up, "--to", mirror, "--root", root, "--component", "Bad Name"}, 2, "--component"},
		{"missing root", []string{"mirror", "--from", up, "--to", mirror, "--root", filepath.Join(dir, "none.json")}, 2, "--root"},
		{"root is not a root", []string{"mirror", "--from", up, "--to", mirror, "--root", art}, 2, "--root"},
		{"empty root", []string{"mirror", "--from", up, "--to", mirror, "--root", emptyRoot}, 2, "--root " + emptyRoot + ": the file is empty"},
		{"root is a device", []string{"mirror", "--from", up, "--to", mirror, "--root", os.DevNull}, 2, "--root: " + os.DevNull + ": not a regular file"},
		{"bad url", []string{"mirror", "--from", "ftp://example.com/repo", "--to", mirror, "--root", root}, 2, "--from"},
		{"unreachable upstream", []string{"mirror", "--from", closed, "--to", mirror, "--root", root}, 1, "cannot reach " + closed},
		{"no repository upstream", []string{"mirror", "--from", filepath.Join(dir, "empty"), "--to", mirror, "--root", root}, 1, "upstream has no metadata/1.root.json"},
		{"--to not writable", []string{"mirror", "--from", up, "--to", readonly, "--root", root}, 1, "--to " + readonly + ": the mirror directory is not writable"},
		{"bad --min-rate", []string{"mirror", "--from", closed, "--to", mirror, "--root", root, "--min-rate", "5"}, 2, "--min-rate 5: want 128 to 1048576 bytes per second"},
		{"bad --min-rate-window", []string{"mirror", "--from", closed, "--to", mirror, "--root", root, "--min-rate-window", "1s"}, 2, "--min-rate-window \"1s\": want a duration from 10s to 10m"},
		{"bad --allow-host", []string{"mirror", "--from", closed, "--to", mirror, "--root", root, "--allow-host", "https://cdn.example.com"}, 2, "--allow-host \"https://cdn.example.com\": want a host name"},
		{"--min-rate with a directory --from", []string{"mirror", "--from", up, "--to", mirror, "--root", root, "--min-rate", "2048"}, 2, "apply to an https --from"},
		{"--to under a file", []string{"mirror", "--from", up, "--to", filepath.Join(art, "mirror"), "--root", root}, 1, "--to " + filepath.Join(art, "mirror") + ": cannot create the mirror directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "--to not writable" && os.Geteuid() == 0 {
				t.Skip("root can write a 0555 directory")
			}
			code, stdout, stderr := bcpublish(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want exit %d and one line with %q (stdout %q)", code, stderr, tc.code, tc.want, stdout)
			}
			if _, err := os.Stat(filepath.Join(mirror, "metadata")); err == nil {
				t.Fatal("a refused mirror wrote metadata")
			}
		})
	}

	code, stdout, stderr := bcpublish(t, "mirror", "--from", up, "--to", mirror, "--root", root)
	if code != 0 || !strings.Contains(stdout, "verified and now serves timestamp v2 (was nothing): 5 target files copied") {
		t.Fatalf("sync: %d %q %q", code, stdout, stderr)
	}
	if code, stdout, _ := bcpublish(t, "status", "--repo", mirror); code != 0 || !strings.Contains(stdout, "signatures verified") {
		t.Fatalf("status of the mirror: %d %s", code, stdout)
	}

	// The loop: syncs at once, keeps going, stops cleanly when interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"bcpublish", "mirror", "--from", up, "--to", mirror, "--root", root, "--interval", "10s"}, &out, &errOut)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "up to date at timestamp v2") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "up to date at timestamp v2") {
			t.Fatalf("loop: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not stop when interrupted")
	}

	// The mirror logs with the global log flags: its warning about its
	// own damaged timestamp.json is a JSON line with --log-format json,
	// and silent with --log-level error.
	ts := filepath.Join(mirror, "metadata", "timestamp.json")
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--log-format", "json"}, `"level":"WARN","msg":"the mirror's own timestamp.json does not verify; it is replaced"`},
		{[]string{"--log-level", "error"}, ""},
	} {
		if err := os.WriteFile(ts, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append(append([]string{}, tc.flags...), "mirror", "--from", up, "--to", mirror, "--root", root)
		code, stdout, stderr := bcpublish(t, args...)
		if code != 0 || !strings.Contains(stdout, "verified and now serves timestamp v2") {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", tc.flags, code, stdout, stderr)
		}
		if tc.want == "" && stderr != "" || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") > 1 {
			t.Errorf("%v: stderr %q, want %q alone", tc.flags, stderr, tc.want)
		}
	}
}

// TestCLIMirrorMinRate: --min-rate and --min-rate-window reach the HTTP
// source. The upstream sends the artifact at about 4 KiB/s, which the
// default rule (1 KiB/s over 30 s) accepts; 64 KiB/s over 10 s does not,
// so the sync fails with the rule's error, and keeps what arrived.
func TestCLIMirrorMinRate(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for one 10 s window")
	}
	dir := t.TempDir()
	up := upstreamRepo(t, dir, bytes.Repeat([]byte("artifact"), 8<<10)) // 64 KiB
	files := http.FileServer(http.Dir(up))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".nc.bin") {
			files.ServeHTTP(w, r)
			return
		}
		// The artifact, 512 bytes every 125 ms.
		f, err := os.Open(filepath.Join(up, filepath.FromSlash(r.URL.Path)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		buf := make([]byte, 512)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(125 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	code, _, stderr := bcpublish(t, "mirror", "--from", srv.URL, "--to", filepath.Join(dir, "mirror"), "--root", filepath.Join(up, "metadata", "1.root.json"),
		"--min-rate", "65536", "--min-rate-window", "10s")
	if code != 1 || !strings.Contains(stderr, "below the minimum rate") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("a sync from an upstream below --min-rate: exit %d, stderr %q; want exit 1 and one line naming the minimum rate", code, stderr)
	}
}

// upstreamRepo makes, under dir, a repository (dir/repo, its keys in
// dir/keys) with notification-client 1.0.0 for linux-amd64 whose artifact
// is data (dir/nc.bin), code-signed with a test PKI.
func upstreamRepo(t *testing.T, dir string, data []byte) (up string) {
	t.Helper()
	pki := testutil.NewPKI(t)
	keys := filepath.Join(dir, "keys")
	up = filepath.Join(dir, "repo")
	art := filepath.Join(dir, "nc.bin")
	if err := os.WriteFile(art, data, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.WriteCerts(t, filepath.Join(dir, "chain.pem"), pki.Leaf.Chain...)
	testutil.WriteKey(t, filepath.Join(dir, "leaf.key"), pki.Leaf.Key)
	for _, args := range [][]string{
		{"keys", "generate", "--out", keys},
		{"init", "--repo", up, "--keys", keys},
		{"codesign", "sign", "--cert", filepath.Join(dir, "chain.pem"), "--key", filepath.Join(dir, "leaf.key"), "--file", art},
		{"release", "add", "--repo", up, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.0.0", "--platform", "linux-amd64", "--file", art},
	} {
		if code, _, stderr := bcpublish(t, args...); code != 0 {
			t.Fatalf("%v: %d %s", args, code, stderr)
		}
	}
	return up
}
