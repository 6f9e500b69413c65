package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/sqlstore"
	"github.com/beckmanconnect/bcupdate/fleet/web"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

// env is a dashboard on a seeded SQLite store, signing in through a real
// OpenID Connect provider in process (mockoidc).
type env struct {
	st   fleet.Store
	kek  fleet.KEK
	oidc *mockoidc.MockOIDC
	srv  *httptest.Server

	mu         sync.Mutex
	challenges []string // code_challenge_method of each authorization request
	// skew moves the dashboard's clock ahead.
	skew atomic.Int64
}

// People of the tests, by role (mockoidc's groups claim).
var (
	viewer  = &mockoidc.MockUser{Subject: "vic", Email: "vic@vendor.example", Groups: []string{"viewer"}}
	support = &mockoidc.MockUser{Subject: "sue", Email: "sue@vendor.example", Groups: []string{"bcfleet-support"}}
	admin   = &mockoidc.MockUser{Subject: "ada", Email: "ada@vendor.example", Groups: []string{"admin"}}
	nobody  = &mockoidc.MockUser{Subject: "nob", Email: "nob@vendor.example"}
)

// The seeded fleet: instrument 4700+i is device dev-4700+i. For
// notification-client 1.1.0 on channel stable: 5 installed, 2 staged, 1
// awaiting authorization, 3 failed (2 "health check failed", 1 "installer
// exited with code 1603"), 1 rolled back by hand, 1 silent, 1 not there
// yet: 14 devices, failure rate 4 of 9.
const (
	seeded      = 14
	annDevice   = "dev-4711"
	annEmail    = "ann.lee@hospital.example"
	annName     = "Ann Lee"
	revokeByWeb = "dev-4703" // revoked in the browser by the admin
)

func newEnv(t testing.TB) *env {
	return newEnvSeeded(t, func(st fleet.Store, kek fleet.KEK) { seed(t, st, kek, time.Now()) })
}

// newEnvSeeded is newEnv with another fleet.
func newEnvSeeded(t testing.TB, seedFn func(fleet.Store, fleet.KEK)) *env {
	t.Helper()
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
	t.Cleanup(func() { st.Close() })
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, kek: kek, oidc: m}
	err = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/oidc/authorize" {
				e.mu.Lock()
				e.challenges = append(e.challenges, r.URL.Query().Get("code_challenge_method"))
				e.mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	seedFn(st, kek)
	d, err := web.New(ctx, web.Options{Issuer: m.Issuer(), ClientID: m.Config().ClientID, ClientSecret: m.Config().ClientSecret,
		RolesClaim: "groups", Store: st, KEK: kek, Now: func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(d)
	t.Cleanup(e.srv.Close)
	return e
}

// seed enrolls the fleet described at seeded through the store, the
// enrollee sealed as enrollment seals it.
func seed(t testing.TB, st fleet.Store, kek fleet.KEK, now time.Time) {
	t.Helper()
	ctx := context.Background()
	sites := []string{"st-marys-lab", "north-clinic"}
	models := []string{"Navios EX", "DxFLEx", "AQUIOS CL"}
	for i := range seeded {
		inst := fmt.Sprint(4700 + i)
		id := "dev-" + inst
		who := wire.Enrollee{Email: fmt.Sprintf("user%d@hospital.example", i), Name: fmt.Sprintf("User %d", i)}
		if id == annDevice {
			who = wire.Enrollee{Email: annEmail, Name: annName}
		}
		plain, _ := json.Marshal(who)
		sealed, err := fleet.Seal(kek, id, plain)
		if err != nil {
			t.Fatal(err)
		}
		d := fleet.Device{ID: id, Site: sites[i%2], PublicKey: []byte(fmt.Sprintf("%032d", i)), Enrolled: now.Add(-30 * 24 * time.Hour),
			Sealed: sealed, EmailHash: fleet.EmailHash(kek, who.Email),
			Instrument: wire.Instrument{Model: models[i%3], ID: inst, Serial: "SN-" + inst}}
		if err := st.AddDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		nc := wire.Component{Name: "notification-client", Channel: "stable", Installed: "1.0.0", State: "up-to-date"}
		switch {
		case i < 5:
			nc.Installed = "1.1.0"
		case i < 7:
			nc.Staged, nc.State = "1.1.0", "staged"
		case i == 7:
			nc.Staged, nc.State, nc.PendingFeatures = "1.1.0", "awaiting-authorization", []string{"phi-file-transfer"}
		case i < 10:
			nc.State, nc.Failed, nc.Reason = "failed", "1.1.0", "health check failed"
		case i == 10:
			nc.State, nc.Failed, nc.Reason = "failed", "1.1.0", "installer exited with code 1603"
		case i == 11:
			nc.State, nc.Failed, nc.ByHand = "failed", "1.1.0", true
		case i == 12:
			nc.Installed = "1.1.0" // but silent: see seen below
		}
		if i == 2 {
			nc.ActiveFeatures = []string{"phi-file-transfer"}
		}
		if i == 1 {
			nc.DeclinedFeatures = []string{"phi-file-transfer"}
		}
		// The devices report the channel pointer they verified: 1.1.0 at
		// 40% in the newest report (dev-4700's), 20% in older ones.
		nc.ChannelRelease, nc.RolloutPercent = "1.1.0", 20
		if i == 0 {
			nc.RolloutPercent = 40
		}
		seen := now.Add(-time.Duration(i) * time.Minute)
		if i == 12 {
			seen = now.Add(-5 * time.Hour)
		}
		state := fleet.DeviceState{Counter: 3, LastSeen: seen, Digest: "d" + inst, AgentVersion: "1.2.0", PollInterval: time.Hour,
			Components: []wire.Component{{Name: "bcagent", Channel: "stable", Installed: "1.2.0", State: "up-to-date"}, nc},
			TUF:        wire.TUF{RootVersion: 1, TimestampVersion: 40}, TimestampSince: seen,
			Audit: wire.LogHead{Seq: 12, Hash: fmt.Sprintf("%064x", i)}, Consent: wire.LogHead{Seq: 2, Hash: fmt.Sprintf("%064x", i+100)}}
		if id == annDevice {
			state.Flags = []string{"audit log went backwards: 9 entries, 12 before (rewritten on the device?)"}
			state.TimestampSince = now.Add(-4 * 24 * time.Hour)
		}
		if err := st.SaveReport(ctx, id, fleet.ReportUpdate{Counter: 3, LastSeen: seen, Full: true, State: state}); err != nil {
			t.Fatal(err)
		}
	}
	// notification-client 1.1.0's history: 1, 3 and 4 installed three,
	// two and one days ago (5 now).
	for i, installed := range []int{1, 3, 4} {
		at := now.Add(-time.Duration(3-i) * 24 * time.Hour).Truncate(time.Hour)
		p := fleet.RolloutPoint{Channel: "stable", RolloutStatus: fleet.RolloutStatus{Component: "notification-client", Version: "1.1.0",
			Targeted: 14, Installed: installed, Staged: 2, Pending: 12 - installed}}
		if err := st.RecordRollouts(ctx, at, []fleet.RolloutPoint{p}, now.Add(-web.HistoryKeep)); err != nil {
			t.Fatal(err)
		}
	}
}

// client is a person's HTTP client: it follows no redirects and keeps
// the dashboard's cookies itself (net/http's jar sends Secure cookies
// only over https; browsers send them to loopback too).
type client struct {
	t       testing.TB
	e       *env
	cookies map[string]string
}

func (e *env) client(t testing.TB) *client {
	return &client{t: t, e: e, cookies: map[string]string{}}
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (c *client) do(method, target string, form url.Values, header map[string]string) resp {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	if strings.HasPrefix(target, "/") {
		target = c.e.srv.URL + target
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if strings.HasPrefix(target, c.e.srv.URL) {
		for k, v := range c.cookies {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if strings.HasPrefix(target, c.e.srv.URL) {
		for _, ck := range r.Cookies() {
			if ck.MaxAge < 0 {
				delete(c.cookies, ck.Name)
			} else {
				c.cookies[ck.Name] = ck.Value
			}
		}
	}
	return resp{r.StatusCode, r.Header, string(b)}
}

func (c *client) get(path string) resp { c.t.Helper(); return c.do("GET", path, nil, nil) }

// signIn runs the authorization-code flow for user as a browser would,
// starting at path; it returns the callback's answer.
func (c *client) signIn(user *mockoidc.MockUser, path string) resp {
	c.t.Helper()
	r := c.get(path)
	if r.status == http.StatusFound && strings.HasPrefix(r.header.Get("Location"), "/signin") {
		r = c.get(r.header.Get("Location"))
	}
	if r.status != http.StatusFound || !strings.HasPrefix(r.header.Get("Location"), c.e.oidc.AuthorizationEndpoint()) {
		c.t.Fatalf("sign-in did not go to the issuer: %d %q", r.status, r.header.Get("Location"))
	}
	c.e.oidc.QueueUser(user)
	r = c.get(r.header.Get("Location"))
	if r.status != http.StatusFound {
		c.t.Fatalf("the issuer's authorize: %d %s", r.status, r.body)
	}
	return c.get(r.header.Get("Location"))
}

// csrf is the CSRF token of the forms on page body.
func csrf(body string) string {
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopBrowser()
	os.Exit(code)
}
