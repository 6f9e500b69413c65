package main

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/sqlstore"
	"github.com/beckmanconnect/bcupdate/fleet/web"
)

// make demo's sign-in: the issuer asks who to be, and the dashboard
// gets that person with that role.
func TestDemoSignIn(t *testing.T) {
	if _, err := start("0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("a non-loopback address: %v", err)
	}
	m, err := start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	ctx := context.Background()
	dir := t.TempDir()
	if err := fleet.GenerateKEK(filepath.Join(dir, "kek")); err != nil {
		t.Fatal(err)
	}
	kek, err := fleet.OpenKEK("file://" + filepath.Join(dir, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := web.New(ctx, web.Options{Issuer: m.Issuer(), ClientID: m.ClientID, ClientSecret: m.ClientSecret, RolesClaim: "groups", Store: st, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d)
	defer srv.Close()
	cookies := map[string]string{}
	get := func(u string) (int, string, string) {
		t.Helper()
		if strings.HasPrefix(u, "/") {
			u = srv.URL + u
		}
		req, _ := http.NewRequest("GET", u, nil)
		if strings.HasPrefix(u, srv.URL) {
			for k, v := range cookies {
				req.AddCookie(&http.Cookie{Name: k, Value: v})
			}
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		r, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		for _, ck := range r.Cookies() {
			cookies[ck.Name] = ck.Value
		}
		return r.StatusCode, r.Header.Get("Location"), string(b)
	}
	_, loc, _ := get("/signin?next=/access")
	status, _, page := get(loc)
	links := regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if status != 200 || len(links) != 3 || !strings.Contains(page, "support associate") {
		t.Fatalf("the choice of who to be: %d %s", status, page)
	}
	var choice string
	for _, l := range links {
		if strings.Contains(l[1], "demo_user=support") {
			choice = html.UnescapeString(l[1])
		}
	}
	iss, _ := url.Parse(m.Issuer())
	_, cb, _ := get(iss.Scheme + "://" + iss.Host + choice)
	if status, _, body := get(cb); status != 200 || cookies["__Host-bcfleet-session"] == "" {
		t.Fatalf("callback: %d %s", status, body)
	}
	if status, _, body := get("/access"); status != 403 || !strings.Contains(body, "needs the admin role; you have support") || !strings.Contains(body, "support.associate@vendor.example") {
		t.Fatalf("signed in as the demo's support associate: %d %s", status, body)
	}
}
