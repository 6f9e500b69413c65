package main

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// The serving comparison's honesty rules: a server that answers with an
// error, a short body or other bytes fails the run, naming the URL.

var testBody = []byte(strings.Repeat("0123456789abcdef", 256)) // 4 KiB

func testSum() string { s := sha256.Sum256(testBody); return hex.EncodeToString(s[:]) }

func testServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/targets/bench/file.bin"
}

// file answers with b and its Content-Length, as file servers do.
func file(b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}
}

func forbidden(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "403 Forbidden", http.StatusForbidden)
}

func TestVerifyURL(t *testing.T) {
	cases := []struct {
		name string
		h    http.HandlerFunc
		want string // in the error; "" for none
	}{
		{"good", file(testBody), ""},
		{"chunked", func(w http.ResponseWriter, _ *http.Request) { w.Write(testBody) }, "Content-Length -1"},
		{"403", forbidden, "status 403"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, "status 302"},
		{"short", func(w http.ResponseWriter, _ *http.Request) { w.Write(testBody[:100]) }, "Content-Length 100, want 4096"},
		{"truncated", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(testBody)))
			w.Write(testBody[:100])
		}, "reading the body"},
		{"other bytes", file(append(append([]byte(nil), testBody[:1000]...), testBody[999:4095]...)), "sha256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := testServer(t, tc.h)
			err := verifyURL(u, int64(len(testBody)), testSum())
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && err == nil:
				t.Fatalf("verifyURL passed a %s server", tc.name)
			case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), u)):
				t.Errorf("error %q does not name the URL and %q", err, tc.want)
			}
		})
	}
}

func TestWrkRun(t *testing.T) {
	testutil.NeedTool(t, "wrk")
	o := wrkOpts{threads: 1, conns: 2, duration: "1s", minBytes: int64(len(testBody)), minRequests: 10}
	good := testServer(t, file(testBody))
	r, err := wrkRun(good, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.requests < 10 || r.bytes < r.requests*int64(len(testBody)) || r.rps() <= 0 {
		t.Errorf("wrk against a good server: %+v", r)
	}
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want string
	}{
		{"403", forbidden, "non-2xx/3xx"},
		{"short", file(testBody[:100]), "short bodies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := testServer(t, tc.h)
			_, err := wrkRun(u, o)
			if err == nil {
				t.Fatalf("wrkRun passed a %s server", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), u) {
				t.Errorf("error does not name the URL and %q: %v", tc.want, err)
			}
		})
	}
	// Nothing listening: connect errors.
	if _, err := wrkRun("http://127.0.0.1:1/x", o); err == nil {
		t.Error("wrkRun passed a run where every connect failed")
	}
}

// The bug this guards against: nginx as root serves as nobody, which
// cannot read a 0700 directory and answers 403; verifyURL says so, and
// passes once the tree is readable.
func TestNginxUnreadable(t *testing.T) {
	nginx := testutil.NeedTool(t, "nginx")
	if os.Geteuid() != 0 {
		t.Skip("nginx's workers only change user when started as root")
	}
	dir, err := os.MkdirTemp("", "bcupdate-unreadable-") // 0700
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "repo")
	os.MkdirAll(filepath.Join(root, "targets"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "targets", "file.bin"), testBody, 0o644); err != nil {
		t.Fatal(err)
	}
	c, addr, err := startNginx(nginx, filepath.Join(dir, "nginx"), root)
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop(syscall.SIGQUIT, 10*time.Second)
	u := "http://" + addr + "/targets/file.bin"
	if err := verifyURL(u, int64(len(testBody)), testSum()); err == nil || !strings.Contains(err.Error(), "status 403") || !strings.Contains(err.Error(), u) {
		t.Errorf("nginx over a 0700 directory: %v, want a 403 naming %s", err, u)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := verifyURL(u, int64(len(testBody)), testSum()); err != nil {
		t.Errorf("after chmod 0755: %v", err)
	}
}
