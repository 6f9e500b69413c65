package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// The User-Agent comes from the HTTP client the agent was opened with
// (OpenOptions.UserAgent), on every request and redirect, without changing
// the caller's request.
func TestUserAgent(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("User-Agent"))
		mu.Unlock()
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/ok", http.StatusFound)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()

	for _, ua := range []string{"", "bcagent/1.2.3"} {
		seen = nil
		hc, err := newHTTPClient(srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := defaultUserAgent
		if ua != "" {
			hc.Transport.(*guardedTransport).userAgent = ua
			want = ua
		}
		f := &httpFetcher{ctx: context.Background(), client: hc}
		if b, err := f.DownloadFile(srv.URL+"/redirect", 10, 0); err != nil || string(b) != "ok" {
			t.Fatalf("download: %q %v", b, err)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ok", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := req.Header.Get("User-Agent"); got != "" {
			t.Errorf("the transport changed the caller's request: User-Agent %q", got)
		}
		mu.Lock()
		if len(seen) != 3 {
			t.Fatalf("server saw %d requests, want 3", len(seen))
		}
		for i, got := range seen {
			if got != want {
				t.Errorf("request %d: User-Agent %q, want %q", i, got, want)
			}
		}
		mu.Unlock()
	}
}
