package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
)

// The dashboard over plain HTTP: the sign-in's checks, roles by URL,
// CSRF, the headers and the cookies. The browser tests (browser_test.go)
// do the same through Chromium.
func TestDashboardHTTP(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	t.Run("headers", func(t *testing.T) {
		r := e.client(t).get("/signedout")
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("Content-Security-Policy %q allows something unsafe", csp)
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store",
			"Referrer-Policy": "same-origin"} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s: %q, want %q", h, got, want)
			}
		}
		if strings.Contains(r.body, "<script>") || strings.Contains(r.body, "style=") || strings.Contains(r.body, "onclick=") {
			t.Errorf("a page has inline script or style:\n%s", r.body)
		}
	})

	t.Run("signed out people are sent to sign in, and come back", func(t *testing.T) {
		c := e.client(t)
		r := c.get("/fleet?site=north-clinic")
		if r.status != http.StatusFound || r.header.Get("Location") != "/signin?next=%2Ffleet%3Fsite%3Dnorth-clinic" {
			t.Fatalf("GET /fleet signed out: %d %q", r.status, r.header.Get("Location"))
		}
		r = c.get(r.header.Get("Location"))
		loc, _ := url.Parse(r.header.Get("Location"))
		q := loc.Query()
		if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || q.Get("nonce") == "" || len(q.Get("state")) < 40 ||
			q.Get("redirect_uri") != e.srv.URL+"/auth/callback" {
			t.Fatalf("authorization request without PKCE, nonce or state: %s", loc)
		}
		set := r.header.Get("Set-Cookie")
		for _, want := range []string{"__Host-bcfleet-signin=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
			if !strings.Contains(set, want) {
				t.Errorf("sign-in cookie %q lacks %s", set, want)
			}
		}
		e.oidc.QueueUser(viewer)
		r = c.get(loc.String())
		r = c.get(r.header.Get("Location"))
		if r.status != 200 || !strings.Contains(r.body, `content="0;url=/fleet?site=north-clinic"`) {
			t.Fatalf("callback: %d %s", r.status, r.body)
		}
		if !strings.Contains(strings.Join(r.header.Values("Set-Cookie"), "\n"), "__Host-bcfleet-session=") {
			t.Fatalf("no session cookie: %q", r.header.Values("Set-Cookie"))
		}
		for _, v := range r.header.Values("Set-Cookie") {
			if strings.HasPrefix(v, "__Host-bcfleet-session=") {
				for _, want := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Strict", "Max-Age=28800"} {
					if !strings.Contains(v, want) {
						t.Errorf("session cookie %q lacks %s", v, want)
					}
				}
			}
		}
		r = c.get("/fleet?site=north-clinic")
		if r.status != 200 || !strings.Contains(r.body, "7 devices match") || !strings.Contains(r.body, "dev-4701") || strings.Contains(r.body, "dev-4700") {
			t.Fatalf("the fleet page of north-clinic: %d %s", r.status, r.body)
		}
	})

	t.Run("a sign-in must be this browser's", func(t *testing.T) {
		c := e.client(t)
		r := c.get("/signin?next=/fleet")
		loc := r.header.Get("Location")
		e.oidc.QueueUser(admin)
		r = c.get(loc)
		cb, _ := url.Parse(r.header.Get("Location"))
		// Another browser (no sign-in cookie) brings the code back: a
		// login CSRF.
		other := e.client(t)
		if r := other.get(cb.RequestURI()); r.status != http.StatusBadRequest || !strings.Contains(r.body, "not started here") || other.cookies["__Host-bcfleet-session"] != "" {
			t.Fatalf("callback without the sign-in cookie: %d %s", r.status, r.body)
		}
		// The state altered.
		q := cb.Query()
		q.Set("state", "forged")
		cb.RawQuery = q.Encode()
		if r := c.get(cb.RequestURI()); r.status != http.StatusBadRequest || !strings.Contains(r.body, "state does not match") || c.cookies["__Host-bcfleet-session"] != "" {
			t.Fatalf("callback with another state: %d %s", r.status, r.body)
		}
	})

	t.Run("never to another site after signing in", func(t *testing.T) {
		for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example"} {
			c := e.client(t)
			r := c.signIn(viewer, "/signin?next="+url.QueryEscape(next))
			if !strings.Contains(r.body, `content="0;url=/rollouts"`) {
				t.Errorf("next=%s: %s", next, r.body)
			}
		}
	})

	t.Run("roles by URL", func(t *testing.T) {
		v, s, a, n := e.client(t), e.client(t), e.client(t), e.client(t)
		v.signIn(viewer, "/fleet")
		s.signIn(support, "/fleet")
		a.signIn(admin, "/fleet")
		n.signIn(nobody, "/fleet")
		before, _ := e.st.AccessLog(ctx)
		for _, tc := range []struct {
			name   string
			c      *client
			path   string
			status int
			want   string
		}{
			{"no role", n, "/fleet", 403, "needs the viewer role; you have none"},
			{"viewer: a device, no personal data", v, "/devices/" + annDevice, 200, "Only the support role sees who enrolled this PC"},
			{"viewer: the enrollee by URL", v, "/devices/" + annDevice + "/enrollee", 403, "needs the support role; you have viewer"},
			{"viewer: the access log", v, "/access", 403, "needs the admin role"},
			{"support: the access log", s, "/access", 403, "needs the admin role"},
			{"support: an unknown device", s, "/devices/dev-nope/enrollee", 404, "no device"},
			{"viewer: an unknown device", v, "/devices/dev-nope", 404, "no device"},
			{"a bad filter", v, "/fleet?online=maybe", 400, "want online or offline"},
			{"a version without a component", v, "/fleet?version=1.1.0", 400, "needs a component"},
		} {
			r := tc.c.get(tc.path)
			if r.status != tc.status || !strings.Contains(strings.ToLower(r.body), strings.ToLower(tc.want)) || strings.Contains(r.body, annEmail) || strings.Contains(r.body, annName) {
				t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			}
		}
		if after, _ := e.st.AccessLog(ctx); len(after) != len(before) {
			t.Fatalf("refused reads were logged: %d entries, %d before", len(after), len(before))
		}
		r := s.get("/devices/" + annDevice + "/enrollee")
		if r.status != 200 || !strings.Contains(r.body, annEmail) || !strings.Contains(r.body, annName) {
			t.Fatalf("support: the enrollee: %d %s", r.status, r.body)
		}
		log, _ := e.st.AccessLog(ctx)
		if last := log[len(log)-1]; last.Actor != "oidc:sue" || last.Action != "device.show" || last.Target != annDevice {
			t.Fatalf("the support read is not in the access log: %+v", last)
		}
		if r := a.get("/access"); r.status != 200 || !strings.Contains(r.body, "oidc:sue") || !strings.Contains(r.body, "chain of all") {
			t.Fatalf("admin: the access log: %d %s", r.status, r.body)
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		a := e.client(t)
		a.signIn(admin, "/devices/dev-4702")
		page := a.get("/devices/dev-4702")
		tok := csrf(page.body)
		if tok == "" {
			t.Fatalf("no CSRF token on the device page:\n%s", page.body)
		}
		for _, tc := range []struct {
			name   string
			form   url.Values
			header map[string]string
			want   string
		}{
			{"no token", url.Values{"confirm": {"dev-4702"}}, nil, "security token is missing"},
			{"another token", url.Values{"confirm": {"dev-4702"}, "csrf": {tok[:len(tok)-2] + "AA"}}, nil, "security token is missing"},
			{"another origin", url.Values{"confirm": {"dev-4702"}, "csrf": {tok}}, map[string]string{"Origin": "https://evil.example"}, "another origin"},
			{"another site", url.Values{"confirm": {"dev-4702"}, "csrf": {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, "another site"},
		} {
			r := a.do("POST", "/devices/dev-4702/revoke", tc.form, tc.header)
			if r.status != http.StatusForbidden || !strings.Contains(r.body, tc.want) {
				t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			}
		}
		if d, _ := e.st.Device(ctx, "dev-4702"); d.Revoked != nil {
			t.Fatal("a refused request revoked the device")
		}
		// Signed out: refused, not redirected.
		if r := e.client(t).do("POST", "/devices/dev-4702/revoke", url.Values{"confirm": {"dev-4702"}, "csrf": {tok}}, nil); r.status != http.StatusForbidden {
			t.Errorf("a revoke without a session: %d", r.status)
		}
		// A viewer's own token does not make it an admin.
		v := e.client(t)
		v.signIn(viewer, "/fleet")
		vt := csrf(v.get("/fleet").body)
		if r := v.do("POST", "/devices/dev-4702/revoke", url.Values{"confirm": {"dev-4702"}, "csrf": {vt}}, nil); r.status != http.StatusForbidden || !strings.Contains(r.body, "needs the admin role") {
			t.Errorf("a viewer revokes: %d %s", r.status, r.body)
		}
		r := a.do("POST", "/devices/dev-4702/revoke", url.Values{"confirm": {"dev-4702"}, "csrf": {tok}}, map[string]string{"Origin": e.srv.URL, "Sec-Fetch-Site": "same-origin"})
		if r.status != http.StatusSeeOther {
			t.Fatalf("revoke with the token: %d %s", r.status, r.body)
		}
		if d, _ := e.st.Device(ctx, "dev-4702"); d.Revoked == nil {
			t.Fatal("the device is not revoked")
		}
		log, _ := e.st.AccessLog(ctx)
		if last := log[len(log)-1]; last.Actor != "oidc:ada" || last.Action != "device.revoke" || last.Target != "dev-4702" {
			t.Fatalf("the revoke is not in the access log: %+v", last)
		}
		if n, err := fleet.VerifyAccessLog(ctx, e.st); err != nil || n != len(log) {
			t.Fatalf("access log: %d %v", n, err)
		}
	})

	t.Run("sign-out ends the session, copies of the cookie too", func(t *testing.T) {
		c := e.client(t)
		c.signIn(viewer, "/fleet")
		copied := c.cookies["__Host-bcfleet-session"]
		tok := csrf(c.get("/fleet").body)
		if r := c.do("POST", "/signout", url.Values{}, nil); r.status != http.StatusForbidden {
			t.Fatalf("sign-out without the CSRF token: %d", r.status)
		}
		r := c.do("POST", "/signout", url.Values{"csrf": {tok}}, nil)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/signedout" || c.cookies["__Host-bcfleet-session"] != "" {
			t.Fatalf("sign-out: %d %q %v", r.status, r.header.Get("Location"), c.cookies)
		}
		c.cookies["__Host-bcfleet-session"] = copied
		if r := c.get("/fleet"); r.status != http.StatusFound || !strings.HasPrefix(r.header.Get("Location"), "/signin") {
			t.Fatalf("the session's cookie after sign-out: %d", r.status)
		}
		// A cookie sealed by another service, or altered, is no session.
		c.cookies["__Host-bcfleet-session"] = copied[:len(copied)-3] + "AAA"
		if r := c.get("/fleet"); r.status != http.StatusFound {
			t.Fatalf("an altered cookie: %d", r.status)
		}
	})

	t.Run("the rollouts page reads the fleet once per 30 seconds", func(t *testing.T) {
		c := e.client(t)
		c.signIn(viewer, "/rollouts")
		n := func() string {
			t.Helper()
			r := c.get("/rollouts")
			m := regexp.MustCompile(`\((\d+) devices enrolled\)`).FindStringSubmatch(r.body)
			if r.status != 200 || m == nil {
				t.Fatalf("rollouts: %d %s", r.status, r.body)
			}
			return m[1]
		}
		before := n()
		d := fleet.Device{ID: "dev-9999", Site: "lab-9", PublicKey: []byte("a new device's key, 32 bytes...!"), Enrolled: time.Now(),
			Sealed: []byte("x"), EmailHash: []byte("y")}
		if err := e.st.AddDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		if got := n(); got != before {
			t.Fatalf("within 30 s the page read the fleet again: %s devices, %s before", got, before)
		}
		e.skew.Add(int64(31 * time.Second))
		defer e.skew.Add(-int64(31 * time.Second))
		// After 30 s the older numbers are shown once more while they
		// are read again in the background; then the new ones.
		if got := n(); got != before {
			t.Fatalf("the first request after 30 s waited for a new read: %s devices, %s before", got, before)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, _ := strconv.Atoi(n())
			if strconv.Itoa(got-1) == before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 30 s: still %d devices, %s before and one enrolled", got, before)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("the newest release over time", func(t *testing.T) {
		c := e.client(t)
		c.signIn(viewer, "/rollouts")
		r := c.get("/rollouts")
		var found bool
		installedNow := -1 // 1.1.0's installed on the bar chart
		for _, m := range regexp.MustCompile(`data-chart="([^"]*)"`).FindAllStringSubmatch(r.body, -1) {
			var ch struct {
				Kind, Title string
				Labels      []string
				Series      []struct {
					Key  string
					Data []int
				}
			}
			if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &ch); err != nil {
				t.Fatal(err)
			}
			if ch.Kind == "" && ch.Title == "notification-client on stable" && ch.Labels[0] == "1.1.0" {
				installedNow = ch.Series[0].Data[0]
			}
			if ch.Kind != "history" || ch.Title != "notification-client 1.1.0 on stable" {
				continue
			}
			found = true
			// The three seeded days, perhaps this hour's point the
			// dashboard recorded at start, and now (what the bars show).
			if n := len(ch.Labels); n < 4 || n > 5 || ch.Series[0].Key != "installed" || fmt.Sprint(ch.Series[0].Data[:3]) != "[1 3 4]" ||
				ch.Series[0].Data[n-1] != installedNow {
				t.Errorf("the chart over time (%d installed now): %+v", installedNow, ch)
			}
			for _, l := range ch.Labels {
				if _, err := time.Parse(time.RFC3339, l); err != nil {
					t.Errorf("a time of the chart over time: %q", l)
				}
			}
		}
		if !found || !strings.Contains(r.body, "1.1.0 over time") || !strings.Contains(r.body, "numbers at the end of each day") {
			t.Fatalf("no chart over time of notification-client 1.1.0:\n%s", r.body)
		}
		// The rollout's percent, as the newest report says.
		if !strings.Contains(r.body, "rolled out to <strong>40%</strong> of devices, as reported by devices") || !strings.Contains(r.body, `<span class="badge">at 40%</span>`) {
			t.Errorf("the rollout's percent is not the newest report's 40%%:\n%s", r.body)
		}
		if d := c.get("/devices/dev-4701"); !strings.Contains(d.body, "<td>phi-file-transfer</td><td>declined</td>") {
			t.Errorf("dev-4701's declined feature is not shown:\n%s", d.body)
		}
	})

	t.Run("a rollouts page weighs under 300 KiB, chart library included", func(t *testing.T) {
		c := e.client(t)
		c.signIn(viewer, "/rollouts")
		r := c.get("/rollouts")
		total := len(r.body)
		refs := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(r.body, -1)
		var chart bool
		for _, m := range refs {
			a := c.get(m[1])
			if a.status != 200 {
				t.Fatalf("%s: %d", m[1], a.status)
			}
			total += len(a.body)
			chart = chart || strings.Contains(m[1], "chart.umd.min.js")
		}
		if !chart || len(refs) < 3 {
			t.Fatalf("the page loads %v", refs)
		}
		if total > 300<<10 {
			t.Errorf("the rollouts page with its scripts and styles is %d bytes", total)
		}
		t.Logf("rollouts page weight: %.1f KiB", float64(total)/1024)
	})

	t.Run("paging", func(t *testing.T) {
		c := e.client(t)
		c.signIn(viewer, "/fleet")
		r := c.get("/fleet?component=notification-client&state=failed")
		if !strings.Contains(r.body, "4 devices match") || strings.Contains(r.body, "dev-4700") || !strings.Contains(r.body, "dev-4711") {
			t.Fatalf("failed devices: %s", r.body)
		}
		if r := c.get("/fleet?q=4711"); !strings.Contains(r.body, "1 device match") || !strings.Contains(r.body, `href="/devices/dev-4711"`) {
			t.Fatalf("search for instrument 4711: %s", r.body)
		}
		if r := c.get("/fleet?online=offline"); !strings.Contains(r.body, "dev-4712") || strings.Contains(r.body, "dev-4700") {
			t.Fatalf("offline (dev-4712 is silent): %s", r.body)
		}
	})

	t.Run("a device's report history says what changed", func(t *testing.T) {
		d, err := e.st.Device(ctx, "dev-4713")
		if err != nil {
			t.Fatal(err)
		}
		st := d.State
		st.Counter, st.LastSeen, st.AgentVersion = st.Counter+1, time.Now(), "1.3.0"
		st.Components = slices.Clone(st.Components)
		st.Components[1].Installed = "1.0.1"
		if err := e.st.SaveReport(ctx, d.ID, fleet.ReportUpdate{Counter: st.Counter, LastSeen: st.LastSeen, Full: true, State: st}); err != nil {
			t.Fatal(err)
		}
		// A heartbeat is not a change.
		if err := e.st.SaveReport(ctx, d.ID, fleet.ReportUpdate{Counter: st.Counter + 1, LastSeen: time.Now()}); err != nil {
			t.Fatal(err)
		}
		c := e.client(t)
		c.signIn(viewer, "/devices/dev-4713")
		r := c.get("/devices/dev-4713")
		i, j := strings.Index(r.body, "agent 1.2.0 → 1.3.0"), strings.Index(r.body, "the oldest report kept")
		if r.status != 200 || !strings.Contains(r.body, "last 2 full reports") || i < 0 || j < i ||
			!strings.Contains(r.body, "notification-client: installed 1.0.0 → 1.0.1") {
			t.Fatalf("dev-4713's report history: %d %s", r.status, r.body)
		}
	})
}
