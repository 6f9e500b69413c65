package publisher_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

// serveFor starts `bcpublish serve`'s server (fasthttp) on a free loopback
// port and returns its URL.
func serveFor(t *testing.T, s publisher.Store, o publisher.ServeOptions) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	o.Addr = "127.0.0.1:0"
	o.Ready = func(u string) { urls <- u }
	go func() { done <- publisher.Serve(ctx, s, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve after shutdown: %v", err)
		}
	})
	select {
	case u := <-urls:
		return u
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	return ""
}

// Both front ends (Handler on net/http, Serve on fasthttp) answer alike.
func TestServeAndHandler(t *testing.T) {
	f := newFixture(t)
	body := strings.Repeat("zip bytes ", 1000)
	file := f.artifact(t, "nc.zip", body, f.pki.Leaf)
	res, err := f.add(publisher.ReleaseOptions{Version: "1.0.0", File: file})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(file) // the zip around body
	body = string(data)
	target := "/targets/" + repo.ConsistentName(res.Path, res.SHA256)
	// Symbolic links in the repository directory: those that lead out of it
	// are 404s (never the file they point at), those inside are followed.
	outside := filepath.Join(f.dir, "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "passwd"), []byte("root:x:0:0:SECRET-PASSWD\n"), 0o644)
	os.WriteFile(filepath.Join(f.store.Dir, "targets", "real.bin"), []byte("inside bytes"), 0o644)
	for link, to := range map[string]string{
		"metadata/passwd.json": filepath.Join(outside, "passwd"), // absolute
		"targets/passwd":       "../../outside/passwd",           // relative, escaping
		"targets/etc":          outside,                          // a directory
		"targets/up":           "..",                             // the parent of the repository
		"targets/inside.bin":   "real.bin",
	} {
		if err := os.Symlink(to, filepath.Join(f.store.Dir, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
	hs := httptest.NewServer(publisher.Handler(f.store, nil))
	defer hs.Close()
	for i, front := range []struct{ name, url string }{
		{"Handler", hs.URL},
		{"Serve", serveFor(t, f.store, publisher.ServeOptions{})},
	} {
		t.Run(front.name, func(t *testing.T) {
			get := func(method, path string, hdr ...string) (*http.Response, string) {
				t.Helper()
				req, err := http.NewRequest(method, front.url+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := http.DefaultTransport.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return resp, string(b)
			}
			cases := []struct {
				path   string
				status int
				body   string
				cache  string
				ctype  string
			}{
				{"/metadata/timestamp.json", 200, `"_type": "timestamp"`, "no-cache", "application/json"},
				{"/metadata/timestamp.json", 200, `"_type": "timestamp"`, "no-cache", "application/json"}, // from memory
				{"/metadata/1.root.json", 200, `"_type": "root"`, "immutable", "application/json"},
				{target, 200, body, "immutable", "application/octet-stream"},
				{"/metadata/", 404, "", "", ""},
				{"/metadata/9.root.json", 404, "", "", ""},
				{"/targets/notification-client/", 404, "", "", ""},
				{"/targets/../metadata/timestamp.json", 404, "", "", ""},
				{"/targets/%2e%2e/metadata/timestamp.json", 404, "", "", ""},
				{"/metadata/%74imestamp.json", 200, `"_type": "timestamp"`, "no-cache", "application/json"},
				{"/keys/root.key", 404, "", "", ""},
				{"/metadata/passwd.json", 404, "", "", ""},
				{"/targets/passwd", 404, "", "", ""},
				{"/targets/etc/passwd", 404, "", "", ""},
				{"/targets/up/outside/passwd", 404, "", "", ""},
				{"/targets/inside.bin", 200, "inside bytes", "immutable", "application/octet-stream"},
				{"/", 404, "", "", ""},
			}
			for _, tc := range cases {
				resp, b := get(http.MethodGet, tc.path)
				if strings.Contains(b, "SECRET-PASSWD") {
					t.Errorf("GET %s served a file outside the repository", tc.path)
				}
				if resp.StatusCode != tc.status || !strings.Contains(b, tc.body) || !strings.Contains(resp.Header.Get("Cache-Control"), tc.cache) ||
					!strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) {
					t.Errorf("GET %s: %d %.60q cache=%q type=%q", tc.path, resp.StatusCode, b, resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Type"))
				}
			}
			// A new timestamp.json is served at once.
			v := fmt.Sprintf("1.0.%d", i+1)
			if _, err := f.add(publisher.ReleaseOptions{Version: v, File: f.artifact(t, v+"/nc.zip", "other "+v, f.pki.Leaf)}); err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile(filepath.Join(f.store.Dir, "metadata", "timestamp.json"))
			if _, b := get(http.MethodGet, "/metadata/timestamp.json"); b != string(want) {
				t.Errorf("timestamp.json after a publish is stale")
			}
			// HEAD: headers and length, no body.
			resp, b := get(http.MethodHead, target)
			if resp.StatusCode != 200 || b != "" || resp.ContentLength != int64(len(body)) {
				t.Errorf("HEAD %s: %d length %d body %q", target, resp.StatusCode, resp.ContentLength, b)
			}
			resp, b = get(http.MethodHead, "/metadata/1.root.json")
			if resp.StatusCode != 200 || b != "" || resp.ContentLength <= 0 {
				t.Errorf("HEAD root: %d length %d body %q", resp.StatusCode, resp.ContentLength, b)
			}
			// Ranges, as a resumed download asks them.
			resp, b = get(http.MethodGet, target, "Range", "bytes=100-")
			if resp.StatusCode != 206 || b != body[100:] || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-%d/%d", len(body)-1, len(body)) {
				t.Errorf("Range bytes=100-: %d %q %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(b))
			}
			resp, b = get(http.MethodGet, target, "Range", "bytes=10-19")
			if resp.StatusCode != 206 || b != body[10:20] {
				t.Errorf("Range bytes=10-19: %d %q", resp.StatusCode, b)
			}
			resp, _ = get(http.MethodGet, target, "Range", fmt.Sprintf("bytes=%d-", len(body)+5))
			if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(body)) {
				t.Errorf("Range past the end: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
			}
			resp, _ = get(http.MethodPost, "/metadata/timestamp.json")
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") {
				t.Errorf("POST: %d allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
			}
		})
	}
}

func TestServeTLS(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	u := serveFor(t, f.store, publisher.ServeOptions{TLSCert: certFile, TLSKey: keyFile})
	if !strings.HasPrefix(u, "https://") {
		t.Fatalf("URL %s", u)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := func(maxVersion uint16) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: maxVersion}}}
	}
	resp, err := client(0).Get(u + "/metadata/timestamp.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"timestamp"`)) || resp.TLS == nil {
		t.Fatalf("GET over TLS: %d %q", resp.StatusCode, b)
	}
	if _, err := client(tls.VersionTLS11).Get(u + "/metadata/timestamp.json"); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}
	if err := publisher.Serve(context.Background(), f.store, publisher.ServeOptions{TLSCert: certFile}); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("--tls-cert without --tls-key: %v", err)
	}
}

// streamOnly hides that a store's objects can seek, as an S3 body cannot.
type streamOnly struct{ publisher.Store }

type plainBody struct{ io.ReadCloser }

func (s streamOnly) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := s.Store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return plainBody{rc}, nil
}

// A store that only streams (S3) is served whole, Range or not.
func TestServeStreamingStore(t *testing.T) {
	f := newFixture(t)
	body := strings.Repeat("s3 bytes ", 5000)
	file := f.artifact(t, "nc.zip", body, f.pki.Leaf)
	res, err := f.add(publisher.ReleaseOptions{Version: "1.0.0", File: file})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(file)
	body = string(data)
	u := serveFor(t, streamOnly{f.store}, publisher.ServeOptions{})
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, u+"/targets/"+repo.ConsistentName(res.Path, res.SHA256), nil)
		req.Header.Set("Range", "bytes=10-")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := body
		if method == http.MethodHead {
			want = ""
		}
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("%s: %d, %d bytes", method, resp.StatusCode, len(b))
		}
	}
}

// A large file goes out through sendfile(2) (the *os.File is the body
// stream): whole, and from a Range in its middle, exactly its bytes.
func TestServeLargeFile(t *testing.T) {
	dir := t.TempDir()
	body := make([]byte, 3<<20+123)
	rand.Read(body)
	if err := os.MkdirAll(filepath.Join(dir, "targets", "big"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "targets", "big", "file.bin"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	u := serveFor(t, &publisher.DirStore{Dir: dir}, publisher.ServeOptions{}) + "/targets/big/file.bin"
	for _, tc := range []struct {
		rng  string
		want []byte
	}{
		{"", body},
		{"bytes=1000000-", body[1000000:]},
		{"bytes=1000000-2999999", body[1000000:3000000]},
	} {
		for range 2 { // twice on one keep-alive connection
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.ContentLength != int64(len(tc.want)) || !bytes.Equal(b, tc.want) {
				t.Errorf("GET Range %q: %d, length %d, %d bytes read (want %d), %v", tc.rng, resp.StatusCode, resp.ContentLength, len(b), len(tc.want), err)
			}
		}
	}
}

// Serve holds the repository directory open between requests: it must
// still serve what the --repo path names now, when the directory is
// replaced (renamed away and a new one put in its place, or a symbolic
// link in the path moved to another directory), and timestamp.json must
// be read again when it is replaced, even by a link out of the directory.
func TestServeRepositoryReplaced(t *testing.T) {
	base := t.TempDir()
	mk := func(dir, ts, target string) {
		t.Helper()
		for name, data := range map[string]string{"metadata/timestamp.json": ts, "targets/t.bin": target} {
			p := filepath.Join(base, dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("a", `{"a": 1}`, "target a")
	mk("b", `{"b": 2}`, "target b")
	if err := os.Symlink("a", filepath.Join(base, "cur")); err != nil {
		t.Fatal(err)
	}
	u := serveFor(t, &publisher.DirStore{Dir: filepath.Join(base, "cur")}, publisher.ServeOptions{})
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(u + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	want := func(step, path string, status int, body string) {
		t.Helper()
		for range 2 { // read, then from memory
			if st, b := get(path); st != status || (status == 200 && b != body) {
				t.Errorf("%s: GET %s: %d %q, want %d %q", step, path, st, b, status, body)
			}
		}
	}
	want("first", "/metadata/timestamp.json", 200, `{"a": 1}`)
	want("first", "/targets/t.bin", 200, "target a")

	// The link in the --repo path moved to another directory.
	if err := os.Symlink("b", filepath.Join(base, "cur.new")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(base, "cur.new"), filepath.Join(base, "cur")); err != nil {
		t.Fatal(err)
	}
	want("link moved", "/metadata/timestamp.json", 200, `{"b": 2}`)
	want("link moved", "/targets/t.bin", 200, "target b")

	// The directory itself replaced by another.
	mk("c", `{"c": 33}`, "target c")
	if err := os.Rename(filepath.Join(base, "b"), filepath.Join(base, "b.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(base, "c"), filepath.Join(base, "b")); err != nil {
		t.Fatal(err)
	}
	want("directory replaced", "/metadata/timestamp.json", 200, `{"c": 33}`)
	want("directory replaced", "/targets/t.bin", 200, "target c")

	// timestamp.json replaced by a link out of the repository: a 404,
	// never the cached bytes nor the file it points at.
	outside := filepath.Join(base, "outside.json")
	os.WriteFile(outside, []byte(`{"SECRET": 1}`), 0o644)
	ts := filepath.Join(base, "b", "metadata", "timestamp.json")
	if err := os.Symlink(outside, ts+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ts+".new", ts); err != nil {
		t.Fatal(err)
	}
	want("link out", "/metadata/timestamp.json", 404, "")

	// The directory gone: 404s, then served again when it is back.
	if err := os.Rename(filepath.Join(base, "b"), filepath.Join(base, "b.gone")); err != nil {
		t.Fatal(err)
	}
	want("gone", "/metadata/timestamp.json", 404, "")
	want("gone", "/targets/t.bin", 404, "")
	mk("b", `{"d": 4}`, "target d")
	want("back", "/metadata/timestamp.json", 200, `{"d": 4}`)
	want("back", "/targets/t.bin", 200, "target d")
}
