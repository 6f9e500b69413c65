package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// signIn runs the authorization-code flow against the mock issuer for
// user and returns the ID token it gives.
func signIn(t *testing.T, m *mockoidc.MockOIDC, user *mockoidc.MockUser) string {
	t.Helper()
	cfg := m.Config()
	m.QueueUser(user)
	q := url.Values{"client_id": {cfg.ClientID}, "redirect_uri": {"http://127.0.0.1/cb"}, "response_type": {"code"},
		"scope": {"openid email groups"}, "state": {"s"}, "nonce": {"n"}}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(m.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %s %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, err = http.PostForm(m.TokenEndpoint(), url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {"http://127.0.0.1/cb"}, "client_id": {cfg.ClientID}, "client_secret": {cfg.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.IDToken == "" {
		t.Fatalf("token: %s %v", resp.Status, err)
	}
	return tok.IDToken
}

func TestPeopleAPI(t *testing.T) {
	ctx := context.Background()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	env := newEnv(t)
	dev := env.enroll(t, "ann.lee@hospital.example")
	var mu sync.Mutex
	rej := map[string]int{}
	people, err := fleet.NewPeople(ctx, fleet.PeopleOptions{Issuer: m.Issuer(), ClientID: m.Config().ClientID, RolesClaim: "groups",
		Store: env.store, KEK: env.kek, Now: m.Now, Rejected: func(r string) { mu.Lock(); rej[r]++; mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(people)
	defer srv.Close()
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	viewer := signIn(t, m, &mockoidc.MockUser{Subject: "vic", Email: "vic@vendor.example", Groups: []string{"viewer"}})
	support := signIn(t, m, &mockoidc.MockUser{Subject: "sue", Email: "sue@vendor.example", Groups: []string{"bcfleet-support"}})
	admin := signIn(t, m, &mockoidc.MockUser{Subject: "ada", Email: "ada@vendor.example", Groups: []string{"admin"}})
	nobody := signIn(t, m, &mockoidc.MockUser{Subject: "nob", Email: "nob@vendor.example"})

	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		want, never                     string
	}{
		{"no token", "GET", "/api/devices", "", "", 401, "Authorization: Bearer", ""},
		{"a forged token", "GET", "/api/devices", viewer[:len(viewer)-4] + "AAAA", "", 401, "not valid", ""},
		{"no role", "GET", "/api/devices", nobody, "", 403, "needs the viewer role", ""},
		{"viewer lists devices, no personal data", "GET", "/api/devices", viewer, "", 200, dev, "ann.lee"},
		{"viewer may not see the enrollee", "GET", "/api/devices/" + dev, viewer, "", 403, "needs the support role", "ann.lee"},
		{"support sees the enrollee", "GET", "/api/devices/" + dev, support, "", 200, "ann.lee@hospital.example", ""},
		{"support may not revoke", "POST", "/api/devices/" + dev + "/revoke", support, "", 403, "needs the admin role", ""},
		{"admin makes a token", "POST", "/api/tokens", admin, `{"site":"lab-2","expires":"1d","uses":2}`, 200, `"token":"bcf_`, ""},
		{"a bad token request", "POST", "/api/tokens", admin, `{"site":"Lab 2"}`, 400, "--site", ""},
		{"rollout counts", "GET", "/api/rollouts/notification-client/1.0.0", viewer, "", 200, `"targeted"`, ""},
		{"unknown device", "GET", "/api/devices/dev-nope", support, "", 404, "no device", ""},
		{"admin revokes", "POST", "/api/devices/" + dev + "/revoke", admin, "", 200, "revoked", ""},
		{"viewer may not list tokens", "GET", "/api/tokens", viewer, "", 403, "needs the admin role", ""},
		{"admin lists tokens, never their secret", "GET", "/api/tokens", admin, "", 200, `"site":"lab-2"`, "bcf_"},
		{"revoking no token", "POST", "/api/tokens/tok-nope/revoke", admin, "", 404, "no token", ""},
	} {
		status, body := call(tc.method, tc.path, tc.token, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) || (tc.never != "" && strings.Contains(body, tc.never)) {
			t.Errorf("%s: %d %s (want %d with %q)", tc.name, status, body, tc.status, tc.want)
		}
	}
	// Admin revokes the token it made: it no longer enrolls.
	_, body := call("POST", "/api/tokens", admin, `{"site":"lab-3"}`)
	var made struct {
		ID     string `json:"id"`
		Secret string `json:"token"`
	}
	json.Unmarshal([]byte(body), &made)
	if status, body := call("POST", "/api/tokens/"+made.ID+"/revoke", support, ""); status != 403 {
		t.Fatalf("support revokes a token: %d %s", status, body)
	}
	if status, body := call("POST", "/api/tokens/"+made.ID+"/revoke", admin, ""); status != 200 || !strings.Contains(body, made.ID) {
		t.Fatalf("admin revokes a token: %d %s", status, body)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	eb := enrollBody(t, made.Secret, "x@hospital.example", pub)
	if code, resp := post(t, env.srv.URL+wire.EnrollPath, eb, map[string]string{wire.SignatureHeader: wire.SignEnroll(priv, eb)}); code != 403 {
		t.Fatalf("enrolling with a revoked token: %d %s", code, resp)
	}
	mu.Lock()
	if rej["sso-missing"] != 1 || rej["sso-invalid"] != 1 || rej["role"] != 5 {
		t.Errorf("refusals counted: %v", rej)
	}
	mu.Unlock()
	// Every read of personal data and every admin action is in the log.
	log, err := env.store.AccessLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range log {
		got = append(got, e.Actor+" "+e.Action)
	}
	want := "oidc:sue device.show,oidc:ada token.create,oidc:ada device.revoke,oidc:ada token.revoke,oidc:ada token.create,oidc:ada token.revoke"
	if strings.Join(got[len(got)-6:], ",") != want {
		t.Fatalf("access log %q, want it to end with %q", got, want)
	}
	if n, err := fleet.VerifyAccessLog(ctx, env.store); err != nil || n != len(log) {
		t.Fatalf("verify: %d %v", n, err)
	}
	// A session past its expiry is refused.
	m.FastForward(2 * time.Hour)
	if status, body := call("GET", "/api/devices", viewer, ""); status != 401 || !strings.Contains(body, "session expired") {
		t.Fatalf("expired session: %d %s", status, body)
	}
	// A token for another client (audience) is refused.
	other, err := fleet.NewPeople(ctx, fleet.PeopleOptions{Issuer: m.Issuer(), ClientID: "another-app", RolesClaim: "groups", Store: env.store, KEK: env.kek, Now: m.Now})
	if err != nil {
		t.Fatal(err)
	}
	fresh := signIn(t, m, &mockoidc.MockUser{Subject: "vic", Groups: []string{"viewer"}})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/devices", nil)
	req.Header.Set("Authorization", "Bearer "+fresh)
	other.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("another audience: %d %s", rec.Code, rec.Body)
	}
}

// bcpublish's rollout guard reads the people's API with a person's token
// and refuses to widen a failing rollout, saying the numbers.
func TestRolloutGuard(t *testing.T) {
	ctx := context.Background()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	env := newEnv(t)
	for i := range 4 {
		id := env.enroll(t, fmt.Sprintf("user%d@hospital.example", i))
		r := full(1, "1.1.0")
		if i == 3 { // rolled back after its health check failed
			r.Components[0].Installed, r.Components[0].State, r.Components[0].Failed, r.Components[0].Reason = "1.0.0", "failed", "1.1.0", "health check failed"
		}
		if code, resp := env.report(t, id, r); code != 200 {
			t.Fatalf("report: %d %s", code, resp)
		}
	}
	people, err := fleet.NewPeople(ctx, fleet.PeopleOptions{Issuer: m.Issuer(), ClientID: m.Config().ClientID, RolesClaim: "groups",
		Store: env.store, KEK: env.kek, Now: m.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(people)
	defer srv.Close()
	viewer := signIn(t, m, &mockoidc.MockUser{Subject: "rel", Groups: []string{"viewer"}})
	g := &publisher.RolloutGuard{Fleet: srv.URL, Token: viewer, MaxFailureRate: 0.02}
	err = g.Check(ctx, "notification-client", "1.1.0")
	if err == nil || !strings.Contains(err.Error(), "1 of 4 reporting devices that tried it failed or were rolled back (25.0%), above --max-failure-rate 2.0%") {
		t.Fatalf("a failing rollout: %v", err)
	}
	g.MaxFailureRate = 0.3
	if err := g.Check(ctx, "notification-client", "1.1.0"); err != nil {
		t.Fatalf("within the limit: %v", err)
	}
	g.Token = viewer[:len(viewer)-4] + "AAAA"
	if err := g.Check(ctx, "notification-client", "1.1.0"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a forged token: %v", err)
	}
	g.Fleet = "http://fleet.example"
	if err := g.Check(ctx, "notification-client", "1.1.0"); err == nil || !strings.Contains(err.Error(), "plain http only to loopback") {
		t.Fatalf("plain http elsewhere: %v", err)
	}
}
