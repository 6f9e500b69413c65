package main

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
)

// bcfleet serve with --oidc-issuer serves the dashboard beside the APIs,
// and its sign-in goes through the issuer with this service's client and
// secret (the pages themselves are tested in fleet/web).
func TestServeDashboard(t *testing.T) {
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek")
	bcfleet(t, "kek", "generate", kek)
	secret := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secret, []byte(m.Config().ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"bcfleet", "serve", "--db", "sqlite:" + filepath.Join(dir, "fleet.db"), "--kek", "file://" + kek,
			"--addr", "127.0.0.1:0", "--oidc-issuer", m.Issuer(), "--oidc-client-id", m.Config().ClientID,
			"--oidc-client-secret-file", secret, "--roles-claim", "groups"}, out, errb)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("bcfleet serve ended with %d: %s", code, errb.String())
		}
	}()
	re := regexp.MustCompile(`dashboard at (http://127\.0\.0\.1:\d+)/`)
	base := ""
	for range 500 {
		if mm := re.FindStringSubmatch(out.String()); mm != nil {
			base = mm[1]
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if base == "" {
		t.Fatalf("bcfleet serve did not say where the dashboard is: %s %s", out.String(), errb.String())
	}
	cookies := map[string]string{}
	get := func(u string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		if strings.HasPrefix(u, base) {
			for k, v := range cookies {
				req.AddCookie(&http.Cookie{Name: k, Value: v})
			}
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		r, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		for _, ck := range r.Cookies() {
			cookies[ck.Name] = ck.Value
		}
		return r
	}
	loc := func(r *http.Response) string {
		t.Helper()
		l := r.Header.Get("Location")
		if strings.HasPrefix(l, "/") {
			l = base + l
		}
		return l
	}
	r := get(base + "/")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/rollouts" {
		t.Fatalf("GET /: %s %q", r.Status, r.Header.Get("Location"))
	}
	r = get(loc(r))
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "/signin") {
		t.Fatalf("GET /rollouts signed out: %s %q", r.Status, r.Header.Get("Location"))
	}
	r = get(loc(r))
	au, _ := url.Parse(r.Header.Get("Location"))
	if !strings.HasPrefix(au.String(), m.AuthorizationEndpoint()) || au.Query().Get("redirect_uri") != base+"/auth/callback" {
		t.Fatalf("sign-in: %s %q", r.Status, au)
	}
	m.QueueUser(&mockoidc.MockUser{Subject: "rel", Groups: []string{"viewer"}})
	r = get(au.String())
	// The code exchange needs the secret from --oidc-client-secret-file.
	if r = get(loc(r)); r.StatusCode != http.StatusOK || cookies["__Host-bcfleet-session"] == "" {
		t.Fatalf("callback: %s", r.Status)
	}
	if r = get(base + "/rollouts"); r.StatusCode != http.StatusOK {
		t.Fatalf("the rollouts page signed in: %s", r.Status)
	}
	// The device API and the people's API are still there.
	if r = get(base + "/api/devices"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/api/devices without a token: %s", r.Status)
	}
	if r = get(base + "/metrics"); r.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", r.Status)
	}
}
