package e2e

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// dropper serves the repository but cuts artifact downloads after limit
// bytes while drops > 0, and counts artifact bytes served.
type dropper struct {
	next   http.Handler
	mu     sync.Mutex
	drops  int
	limit  int64
	served int64
	ranges []string
}

type countingWriter struct {
	http.ResponseWriter
	d     *dropper
	n     int64
	limit int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.limit > 0 && c.n+int64(len(p)) > c.limit {
		p = p[:c.limit-c.n]
		c.ResponseWriter.Write(p)
		c.n += int64(len(p))
		c.d.add(int64(len(p)))
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	c.d.add(int64(n))
	return n, err
}

func (d *dropper) add(n int64) { d.mu.Lock(); d.served += n; d.mu.Unlock() }

func (d *dropper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, ".tar.gz") {
		d.next.ServeHTTP(w, r)
		return
	}
	d.mu.Lock()
	limit := int64(0)
	if d.drops > 0 {
		d.drops--
		limit = d.limit
	}
	d.ranges = append(d.ranges, r.Header.Get("Range"))
	d.mu.Unlock()
	d.next.ServeHTTP(&countingWriter{ResponseWriter: w, d: d, limit: limit}, r)
}

func TestResumeInterruptedDownload(t *testing.T) {
	e := newEnv(t)
	body := make([]byte, 4<<20)
	rand.Read(body)
	res := e.publishWith("1.0.0", artifactName("1.0.0"), body, func(o *publisher.ReleaseOptions) { o.Install = "file" })
	d := &dropper{next: publisher.Handler(e.store, nil), drops: 3, limit: 512 << 10}
	srv := httptest.NewServer(d)
	defer srv.Close()
	e.repoURL(srv.URL)

	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	// Every attempt of this stage is cut: it fails, keeping what it got.
	if err := e.stage(); err == nil {
		t.Fatal("stage should fail while the connection keeps dropping")
	}
	partial := filepath.Join(e.state, "staging", component, "1.0.0", filepath.Base(res.Path)+".partial")
	fi, err := os.Stat(partial)
	if err != nil || fi.Size() == 0 {
		t.Fatalf("no partial download kept: %v", err)
	}
	// The next stage (a restart) fetches only the rest.
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	e.mustInstall("1.0.0")
	t.Logf("served %d bytes for a %d-byte artifact; ranges asked: %q", d.served, len(body), d.ranges)
	if d.served != int64(len(body)) {
		t.Fatalf("served %d bytes in all for %d: a resumed download must fetch only the rest", d.served, len(body))
	}
	if last := d.ranges[len(d.ranges)-1]; !strings.HasPrefix(last, "bytes=") {
		t.Fatalf("the last request did not resume: %q", last)
	}
	got, _ := os.ReadFile(filepath.Join(e.install, component, "current", filepath.Base(res.Path)))
	if string(got) != string(body) {
		t.Fatal("installed file differs")
	}
}

// Stage does not fsync the artifact; install reads it again, checks it
// against the signed sha256 and fsyncs it first. A staged file whose bytes
// were lost (a power cut before writeback leaves zeros or a short file) or
// changed is refused, dropped, and downloaded again by the next stage: the
// PC stays on its old version meanwhile.
func TestLostStagedBytesAreDownloadedAgain(t *testing.T) {
	// Stage fsyncs neither the staged file nor its signature nor their
	// names: a power cut may lose any of them, and apply must then drop
	// the staged copy, never install from it or fail forever.
	for _, tc := range []struct {
		name  string
		spoil func(string) error
		want  string
	}{
		{"zeroed", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, make([]byte, fi.Size()), 0o600)
		}, "does not match the signed sha256"},
		{"truncated", func(p string) error { return os.Truncate(p, 0) }, "does not match the signed sha256"},
		{"lost", os.Remove, "no such file"},
		{"signature lost", func(p string) error { return os.Remove(p + ".p7s") }, "staged signature"},
		{"back under its partial name", func(p string) error { return os.Rename(p, p+".partial") }, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			res := e.publish("1.1.0")
			if err := e.check(); err != nil {
				t.Fatal(err)
			}
			if err := e.stage(); err != nil {
				t.Fatal(err)
			}
			staged := filepath.Join(e.state, "staging", component, "1.1.0", filepath.Base(res.Path))
			if err := tc.spoil(staged); err != nil {
				t.Fatal(err)
			}
			before := testutil.HashTree(t, e.install)
			err := e.apply()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("apply of a spoiled staged file: %v, want %q", err, tc.want)
			}
			if got := testutil.HashTree(t, e.install); got != before || e.current() != "1.0.0" {
				t.Fatalf("a refused install changed install/ (current %s)", e.current())
			}
			if _, err := os.Stat(filepath.Dir(staged)); !os.IsNotExist(err) {
				t.Fatalf("the spoiled staged copy was kept: %v", err)
			}
			if st := e.status(); st.Components[0].State != client.StateUpdateAvailable {
				t.Fatalf("state after dropping the staged copy: %s, want %s", st.Components[0].State, client.StateUpdateAvailable)
			}
			// The next cycle downloads it again and installs it.
			e.mustInstall("1.1.0")
		})
	}
}
