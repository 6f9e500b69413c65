package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestAllowList(t *testing.T) {
	a, err := newAllowList("https://updates.example.com/repo", []string{"cdn.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		url string
		ok  bool
	}{
		{"https://updates.example.com/repo/metadata/timestamp.json", true},
		{"https://cdn.example.net/x", true},
		{"https://UPDATES.example.com/x", true},
		{"http://updates.example.com/x", false},
		{"https://evil.example.com/x", false},
		{"http://127.0.0.1:8080/x", false}, // loopback is allowed for http, but not in this allow list
		{"ftp://updates.example.com/x", false},
	}
	for _, tc := range cases {
		u, _ := url.Parse(tc.url)
		if err := a.check(u); (err == nil) != tc.ok {
			t.Errorf("%s: ok=%v err=%v", tc.url, tc.ok, err)
		}
	}
}

func TestFetcherRetriesAndLimits(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch r.URL.Path {
		case "/flaky":
			if n < 3 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte("ok"))
		case "/big":
			w.Write([]byte(strings.Repeat("x", 100)))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	hc, err := newHTTPClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &httpFetcher{ctx: context.Background(), client: hc}

	calls.Store(0)
	if b, err := f.DownloadFile(srv.URL+"/flaky", 10, 0); err != nil || string(b) != "ok" || calls.Load() != 3 {
		t.Fatalf("5xx should be retried: %q %v after %d calls", b, err, calls.Load())
	}
	calls.Store(0)
	_, err = f.DownloadFile(srv.URL+"/missing", 10, 0)
	var httpErr *metadata.ErrDownloadHTTP
	if !errors.As(err, &httpErr) || httpErr.StatusCode != 404 || calls.Load() != 1 {
		t.Fatalf("404 must come back at once as ErrDownloadHTTP: %v after %d calls", err, calls.Load())
	}
	calls.Store(0)
	_, err = f.DownloadFile(srv.URL+"/big", 10, 0)
	var lenErr *metadata.ErrDownloadLengthMismatch
	if !errors.As(err, &lenErr) || calls.Load() != 1 {
		t.Fatalf("over-long response must be refused at once: %v after %d calls", err, calls.Load())
	}
}

func TestTLSFloor(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi")) }))
	srv.TLS = &tls.Config{MaxVersion: tls.VersionTLS11}
	srv.StartTLS()
	defer srv.Close()
	hc, err := newHTTPClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Trust the test server's certificate but keep our TLS floor.
	tr := hc.Transport.(*guardedTransport).next.(*http.Transport)
	tr.TLSClientConfig.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	f := &httpFetcher{ctx: context.Background(), client: hc}
	if _, err := f.DownloadFile(srv.URL+"/", 10, 0); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.1 server must be refused, got %v", err)
	}
}

func TestRedirectOutsideAllowListRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://evil.example.com/timestamp.json", http.StatusFound)
	}))
	defer srv.Close()
	hc, _ := newHTTPClient(srv.URL, nil)
	f := &httpFetcher{ctx: context.Background(), client: hc}
	if _, err := f.DownloadFile(srv.URL+"/metadata/timestamp.json", 100, 0); err == nil || !strings.Contains(err.Error(), "not the repository host") {
		t.Fatalf("redirect to another host must be refused, got %v", err)
	}
}

// drip is a handler that announces size bytes, sends head of them at once
// and then one byte every 20 ms until the client goes away.
func drip(size, head int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, head))
		w.(http.Flusher).Flush()
		for i := head; i < size; i++ {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			w.Write([]byte{'x'})
			w.(http.Flusher).Flush()
		}
	}
}

// slowFetcher is a fetcher whose minimum rate is 1 KiB/s over a short
// window, so that a dripping server is found out quickly.
func slowFetcher(t *testing.T, srvURL string) *httpFetcher {
	t.Helper()
	hc, err := newHTTPClient(srvURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc.Transport.(*guardedTransport).rule = rateRule{min: 1024, window: 300 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a safety net, not the rule
	t.Cleanup(cancel)
	return &httpFetcher{ctx: ctx, client: hc}
}

func TestMinRate(t *testing.T) {
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("/metadata/timestamp.json", drip(4096, 10))
	mux.Handle("/stalled", drip(4096, 0))
	mux.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 2<<20)) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		mux.ServeHTTP(w, r)
	}))
	defer srv.Close()

	slow := []struct{ name, path string }{
		{"metadata that drips", "/metadata/timestamp.json"},
		{"a body that never comes", "/stalled"},
	}
	for _, tc := range slow {
		t.Run(tc.name, func(t *testing.T) {
			f := slowFetcher(t, srv.URL)
			calls.Store(0)
			_, err := f.DownloadFile(srv.URL+tc.path, 1<<20, 0)
			var se *SlowError
			if !errors.Is(err, ErrTooSlow) || !errors.As(err, &se) {
				t.Fatalf("want a SlowError, got %v", err)
			}
			if errors.Is(err, ErrVerification) || !isNetwork(err) {
				t.Errorf("a slow server is a network failure, not a verification failure: %v", err)
			}
			var dl *metadata.ErrDownload
			if !errors.As(err, &dl) {
				t.Errorf("a SlowError must be a go-tuf download error (a delegation walk must fail on it): %v", err)
			}
			for _, want := range []string{srv.URL + tc.path, "too slow", "B/s", "min_rate"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
			}
			if calls.Load() != 1 {
				t.Errorf("a too-slow server is not retried at once: %d requests", calls.Load())
			}
			if f.ctx.Err() != nil {
				t.Fatal("the safety net fired, not the rule")
			}
		})
	}

	t.Run("a fast server", func(t *testing.T) {
		f := slowFetcher(t, srv.URL)
		if b, err := f.DownloadFile(srv.URL+"/fast", 4<<20, 0); err != nil || len(b) != 2<<20 {
			t.Fatalf("%d bytes, %v", len(b), err)
		}
	})

	t.Run("the agent's own pauses do not count", func(t *testing.T) {
		// A reader that stops for longer than the window between reads
		// (a slow disk, the max_rate cap) is not a slow server.
		f := slowFetcher(t, srv.URL)
		var got int64
		_, _, err := f.fetchRange(f.ctx, srv.URL+"/fast", 0, 2<<20, writerFunc(func(p []byte) (int, error) {
			got += int64(len(p))
			time.Sleep(400 * time.Millisecond)
			return len(p), nil
		}), nil)
		if err != nil || got != 2<<20 {
			t.Fatalf("%d bytes, %v", got, err)
		}
	})

	t.Run("a range download that drips keeps what arrived", func(t *testing.T) {
		f := slowFetcher(t, srv.URL)
		var buf strings.Builder
		n, _, err := f.fetchRange(f.ctx, srv.URL+"/metadata/timestamp.json", 0, 4096, &buf, nil)
		var p permanent
		if !errors.Is(err, ErrTooSlow) || !errors.As(err, &p) {
			t.Fatalf("want a permanent SlowError (not retried now; resumed by the next stage), got %v", err)
		}
		if n < 10 || int64(buf.Len()) != n {
			t.Fatalf("what arrived must be written and counted: n=%d, written %d", n, buf.Len())
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestSlowErrorMessage(t *testing.T) {
	err := &SlowError{URL: "https://updates.example.com/targets/x", Got: 30, Window: 30 * time.Second, Min: 1024}
	want := "https://updates.example.com/targets/x is too slow: 30 B arrived in 30s (1 B/s), below the minimum rate of 1.0 KiB/s (min_rate 1024, min_rate_window 30s)"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got  %s\nwant %s…", err, want)
	}
}
