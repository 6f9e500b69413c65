package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

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
