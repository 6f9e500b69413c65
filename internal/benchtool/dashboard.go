package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/sqlstore"
	"github.com/beckmanconnect/bcupdate/fleet/web"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/pgtest"
)

// The dashboard benchmark (issue 17's speed goals): a real `bcfleet
// serve` with the dashboard on, over a store of 100,000 enrolled devices
// that each sent a full report, signed in through an OpenID Connect
// provider in this process (mockoidc, as the dashboard's tests use). Each
// page is asked for dashRequests times over keep-alive HTTP on loopback;
// its server time is from sending the request to the last byte of the
// answer. The rollouts page is measured with --rollouts-max-age 0, so
// every request counts the numbers again, and then as served by default
// (the numbers kept 30 s, the page answered from memory).
//
// The honesty rules: every answer must be 200 with the page's marker, and
// a fleet page's "N devices match" must be the number of seeded devices
// its filters select (computed here from how they were seeded), and the
// rollouts page must show the seeded release's counts; otherwise the run
// fails.

// Goals (issue 17), reported beside the numbers, never asserted.
const (
	goalFleetP99    = 50 * time.Millisecond
	goalRolloutsP99 = 100 * time.Millisecond
	goalPageWeight  = 300 << 10
)

const (
	dashDevices  = 100_000
	dashRequests = 100
)

// dashDevice is how seeded device i looks: 500 sites, three models,
// notification-client 1.1.0 rolling out (installed, staged, awaiting,
// failed), one in fifty silent (last seen five hours ago, polling hourly).
type dashDevice struct {
	id, site, model, inst, serial string
	comp                          wire.Component
	silent                        bool
}

var dashModels = []string{"Navios EX", "DxFLEx", "AQUIOS CL"}

func dashSeedDevice(i int) dashDevice {
	d := dashDevice{id: fmt.Sprintf("dev-%07d", i), site: fmt.Sprintf("site-%03d", i%500), model: dashModels[i%3],
		inst: fmt.Sprintf("INST-%07d", i), serial: fmt.Sprintf("SN%09d", i), silent: i%50 == 7}
	d.comp = wire.Component{Name: "notification-client", Channel: "stable", Installed: "1.1.0", State: "up-to-date"}
	switch i % 20 {
	case 1, 2:
		d.comp.Installed, d.comp.Staged, d.comp.State = "1.0.0", "1.1.0", "staged"
	case 3:
		d.comp.Installed, d.comp.Staged, d.comp.State, d.comp.PendingFeatures = "1.0.0", "1.1.0", "awaiting-authorization", []string{"phi-file-transfer"}
	case 4:
		d.comp.Installed, d.comp.State, d.comp.Failed, d.comp.Reason = "1.0.0", "failed", "1.1.0", "health check failed"
	}
	return d
}

// dashPage is one page the benchmark asks for, and which seeded devices
// its filters select (nil: not a fleet page).
type dashPage struct {
	name, path, marker string
	goal               time.Duration
	selects            func(dashDevice) bool
}

func dashPages(n int) []dashPage {
	search := strings.ToLower(dashSeedDevice(n / 2).inst)
	search = search[:len(search)-2] // a hundred instruments
	return []dashPage{
		{"fleet, no filter", "/fleet", "match.", goalFleetP99, func(dashDevice) bool { return true }},
		{"fleet, a later page", "/fleet?after=" + dashSeedDevice(n/2).id, "match.", goalFleetP99, func(dashDevice) bool { return true }},
		{"fleet, a site", "/fleet?site=site-042", "match.", goalFleetP99, func(d dashDevice) bool { return d.site == "site-042" }},
		{"fleet, a site, component and version", "/fleet?site=site-007&component=notification-client&version=1.1.0", "match.", goalFleetP99,
			func(d dashDevice) bool { return d.site == "site-007" && d.comp.Installed == "1.1.0" }},
		{"fleet, component state failed", "/fleet?component=notification-client&state=failed", "match.", goalFleetP99,
			func(d dashDevice) bool { return d.comp.State == "failed" }},
		{"fleet, search by instrument ID", "/fleet?q=" + url.QueryEscape(search), "match.", goalFleetP99,
			func(d dashDevice) bool { return strings.HasPrefix(strings.ToLower(d.inst), search) }},
		{"fleet, instrument model", "/fleet?model=AQUIOS+CL", "match.", goalFleetP99, func(d dashDevice) bool { return d.model == "AQUIOS CL" }},
		{"fleet, online", "/fleet?online=online", "match.", goalFleetP99, func(d dashDevice) bool { return !d.silent }},
		{"fleet, offline", "/fleet?online=offline", "match.", goalFleetP99, func(d dashDevice) bool { return d.silent }},
		{"fleet, a model, offline", "/fleet?model=DxFLEx&online=offline", "match.", goalFleetP99,
			func(d dashDevice) bool { return d.model == "DxFLEx" && d.silent }},
		{"fleet, a site, online", "/fleet?site=site-042&online=online", "match.", goalFleetP99,
			func(d dashDevice) bool { return d.site == "site-042" && !d.silent }},
		{"fleet, a model, online", "/fleet?model=DxFLEx&online=online", "match.", goalFleetP99,
			func(d dashDevice) bool { return d.model == "DxFLEx" && !d.silent }},
		{"device", "/devices/" + dashSeedDevice(n/3).id, "Device " + dashSeedDevice(n/3).id, goalFleetP99, nil},
		// No goal of its own: the page is served from this count, taken
		// again in the background at most every 30 s (the next row).
		{"rollouts (counted for every request)", "/rollouts", "notification-client", 0, nil},
	}
}

// dashResult is one page on one store.
type dashResult struct {
	page     dashPage
	times    []time.Duration
	bytes    int
	matching int // fleet pages: the devices the page says match
}

// quantile is the nearest-rank quantile q of the page's times.
func (r *dashResult) quantile(q float64) time.Duration {
	s := slices.Clone(r.times)
	slices.Sort(s)
	return s[max(0, min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1))]
}

type dashRun struct {
	store   string
	seed    time.Duration
	results []*dashResult
	weight  int // the rollouts page with everything it loads
	assets  []string
}

func dashboardBench(o options) (string, error) {
	n, requests := dashDevices, dashRequests
	if o.quick {
		n, requests = 300, 3
	}
	bcfleet, dir, kekPath, kek, err := fleetWorkspace(o.bin, "bcupdate-dashboard-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	if err := m.Start(ln, nil); err != nil {
		return "", err
	}
	defer m.Shutdown()
	secretFile := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secretFile, []byte(m.ClientSecret+"\n"), 0o600); err != nil {
		return "", err
	}
	now := time.Now().UTC()
	var runs []*dashRun
	var notes []string
	run, err := dashStoreRun(o, "SQLite", bcfleet, "sqlite:"+filepath.Join(dir, "fleet.db"), kekPath, kek, m, secretFile, n, requests, now)
	if err != nil {
		return "", fmt.Errorf("SQLite: %w", err)
	}
	runs = append(runs, run)
	switch {
	case pgtest.BinDir() == "":
		notes = append(notes, "PostgreSQL is not installed (run make deps): not measured.")
	case o.quick && os.Getenv("BENCH_FLEET_POSTGRES") == "":
		notes = append(notes, "PostgreSQL: not run with -quick (set BENCH_FLEET_POSTGRES=1).")
	default:
		pg, dsn, err := startPostgres(filepath.Join(dir, "pg"))
		if err != nil {
			return "", err
		}
		run, err := dashStoreRun(o, "PostgreSQL "+pgVersion(), bcfleet, dsn, kekPath, kek, m, secretFile, n, requests, now)
		if serr := pg.stop(syscall.SIGINT, 60*time.Second); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return "", fmt.Errorf("PostgreSQL: %w", err)
		}
		runs = append(runs, run)
	}
	return dashTables(n, requests, runs, notes), nil
}

// dashStoreRun seeds the store dsn names, serves the dashboard on it
// and measures every page.
func dashStoreRun(o options, name, bcfleet, dsn, kekPath string, kek fleet.KEK, m *mockoidc.MockOIDC, secretFile string, n, requests int, now time.Time) (*dashRun, error) {
	run := &dashRun{store: name}
	fmt.Printf("dashboard: %s: seeding %d devices through the store\n", name, n)
	var err error
	if run.seed, err = dashSeed(dsn, kek, n, now); err != nil {
		return nil, err
	}
	logPath := filepath.Join(filepath.Dir(kekPath), "bcfleet-dashboard-"+strings.Fields(name)[0]+".log")
	c, b, err := dashServe(bcfleet, dsn, kekPath, m, secretFile, logPath, "0")
	if err != nil {
		return nil, err
	}
	defer c.stop(syscall.SIGTERM, 10*time.Second)
	defer b.hc.CloseIdleConnections()
	seeded := make([]dashDevice, n)
	for i := range n {
		seeded[i] = dashSeedDevice(i)
	}
	count := regexp.MustCompile(`(\d+) devices? match\.`)
	for _, p := range dashPages(n) {
		fmt.Printf("dashboard: %s: %s\n", name, p.name)
		r := &dashResult{page: p}
		for i := range requests + 1 {
			t0 := time.Now()
			status, body, err := b.get(p.path)
			d := time.Since(t0)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.path, err)
			}
			if status != http.StatusOK || !strings.Contains(body, p.marker) {
				lb, _ := os.ReadFile(logPath)
				return nil, fmt.Errorf("%s: status %d, marker %q missing: %.300s\nserver log:\n%s", p.path, status, p.marker, body, tail(lb, 2000))
			}
			if i == 0 {
				// The first request of each page warms what the
				// server reads (templates, the store's pages): not timed.
				if err := dashCheck(p, body, seeded, count, r); err != nil {
					return nil, err
				}
				continue
			}
			r.times = append(r.times, d)
			r.bytes = len(body)
		}
		run.results = append(run.results, r)
	}
	// The page weight: the rollouts page and everything it loads.
	_, body, err := b.get("/rollouts")
	if err != nil {
		return nil, err
	}
	run.weight = len(body)
	for _, m := range regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(body, -1) {
		status, asset, err := b.get(m[1])
		if err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("%s: %d %v", m[1], status, err)
		}
		run.weight += len(asset)
		run.assets = append(run.assets, fmt.Sprintf("%s %s", m[1], kib(int64(len(asset)))))
	}
	// The rollouts page as served by default: its numbers kept (30 s)
	// and read again in the background, on a server started afresh.
	b.hc.CloseIdleConnections()
	if err := c.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		return nil, err
	}
	c2, b2, err := dashServe(bcfleet, dsn, kekPath, m, secretFile, logPath+".2", web.DefaultRolloutsMaxAge.String())
	if err != nil {
		return nil, err
	}
	defer c2.stop(syscall.SIGTERM, 10*time.Second)
	defer b2.hc.CloseIdleConnections()
	p := dashPage{name: "rollouts (as served: numbers kept 30 s)", path: "/rollouts", marker: "notification-client", goal: goalRolloutsP99}
	r := &dashResult{page: p}
	for i := range requests + 1 {
		t0 := time.Now()
		status, body, err := b2.get(p.path)
		d := time.Since(t0)
		if err != nil || status != http.StatusOK || !strings.Contains(body, p.marker) {
			return nil, fmt.Errorf("%s (numbers kept): %d %v", p.path, status, err)
		}
		if i == 0 {
			// Waits for the read that starts with the server.
			if err := dashCheck(p, body, seeded, count, r); err != nil {
				return nil, err
			}
			continue
		}
		r.times = append(r.times, d)
		r.bytes = len(body)
	}
	run.results = append(run.results, r)
	return run, nil
}

// dashServe starts `bcfleet serve` with the dashboard on the store dsn
// names and signs a viewer in.
func dashServe(bcfleet, dsn, kekPath string, m *mockoidc.MockOIDC, secretFile, logPath, maxAge string) (*child, *browser, error) {
	addr, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bcfleet, "serve", "--db", dsn, "--kek", "file://"+kekPath, "--addr", addr,
		"--oidc-issuer", m.Issuer(), "--oidc-client-id", m.ClientID, "--oidc-client-secret-file", secretFile,
		"--roles-claim", "groups", "--rollouts-max-age", maxAge)
	cmd.Stdout, cmd.Stderr = logf, logf
	c, err := start(cmd)
	if err != nil {
		return nil, nil, err
	}
	if err := waitReady(c, addr, logPath); err != nil {
		c.stop(syscall.SIGTERM, 10*time.Second)
		return nil, nil, err
	}
	b := &browser{base: "http://" + addr, cookies: map[string]string{},
		hc: &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}, Timeout: 60 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if err := b.signIn(m); err != nil {
		c.stop(syscall.SIGTERM, 10*time.Second)
		return nil, nil, fmt.Errorf("signing in: %w", err)
	}
	return c, b, nil
}

// dashCheck holds a page's numbers to the seeded fleet.
func dashCheck(p dashPage, body string, seeded []dashDevice, count *regexp.Regexp, r *dashResult) error {
	if p.selects != nil {
		want := 0
		for _, d := range seeded {
			if p.selects(d) {
				want++
			}
		}
		m := count.FindStringSubmatch(body)
		if m == nil {
			return fmt.Errorf("%s: no count of matching devices on the page", p.path)
		}
		r.matching, _ = strconv.Atoi(m[1])
		if r.matching != want {
			return fmt.Errorf("%s: the page says %d devices match, %d of the seeded devices do", p.path, r.matching, want)
		}
	}
	if p.path == "/rollouts" {
		// The chart's numbers of notification-client 1.1.0 on stable.
		want := map[string]int{}
		for _, d := range seeded {
			switch {
			case d.silent:
				want["silent"]++
			case d.comp.Installed == "1.1.0":
				want["installed"]++
			case d.comp.State == "failed":
				want["failed"]++
			case d.comp.State == "awaiting-authorization":
				want["awaiting"]++
			default:
				want["staged"]++
			}
		}
		got := map[string]int{}
		for _, m := range regexp.MustCompile(`data-chart="([^"]*)"`).FindAllStringSubmatch(body, -1) {
			var c struct {
				Title  string   `json:"title"`
				Labels []string `json:"labels"`
				Series []struct {
					Key  string `json:"key"`
					Data []int  `json:"data"`
				} `json:"series"`
			}
			if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &c); err != nil {
				return fmt.Errorf("/rollouts: a chart's data: %w", err)
			}
			if c.Title != "notification-client on stable" {
				continue
			}
			if i := slices.Index(c.Labels, "1.1.0"); i >= 0 {
				for _, sr := range c.Series {
					if i < len(sr.Data) && sr.Data[i] > 0 {
						got[sr.Key] = sr.Data[i]
					}
				}
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("/rollouts: notification-client 1.1.0 on stable shows %v, the seeded fleet is %v", got, want)
		}
	}
	return nil
}

// dashSeed enrolls n devices in the store at dsn, as enrollment stores
// them, each with a full report.
func dashSeed(dsn string, kek fleet.KEK, n int, now time.Time) (time.Duration, error) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	start := time.Now()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := dashSeedOne(ctx, st, kek, i, now); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	if err := st.Close(); err != nil {
		return 0, err
	}
	seeded := time.Since(start)
	if strings.HasPrefix(dsn, "postgres") {
		// As autovacuum leaves the tables once it has run after a bulk
		// load (visibility map and statistics), so that the pages are
		// measured at rest rather than while it runs.
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return 0, err
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, "VACUUM ANALYZE"); err != nil {
			return 0, fmt.Errorf("vacuum: %w", err)
		}
	}
	return seeded, nil
}

func dashSeedOne(ctx context.Context, st *sqlstore.Store, kek fleet.KEK, i int, now time.Time) error {
	d := dashSeedDevice(i)
	email := fmt.Sprintf("lab.tech%d@hospital-%d.example", i, i%500)
	enrollee, err := json.Marshal(wire.Enrollee{Email: email, Name: fmt.Sprintf("Lab Technician %d", i)})
	if err != nil {
		return err
	}
	sealed, err := fleet.Seal(kek, d.id, enrollee)
	if err != nil {
		return err
	}
	err = st.AddDevice(ctx, fleet.Device{ID: d.id, Site: d.site, PublicKey: []byte(fmt.Sprintf("%032d", i)),
		Enrolled: now.Add(-30 * 24 * time.Hour), Sealed: sealed, EmailHash: fleet.EmailHash(kek, email),
		Instrument: wire.Instrument{Model: d.model, ID: d.inst, Serial: d.serial}, State: fleet.DeviceState{AgentVersion: "1.4.0"}})
	if err != nil {
		return fmt.Errorf("enrolling %s: %w", d.id, err)
	}
	seen := now.Add(-time.Duration(i%90) * time.Minute)
	if d.silent {
		seen = now.Add(-5 * time.Hour)
	}
	return st.SaveReport(ctx, d.id, fleet.ReportUpdate{Counter: 1, LastSeen: seen, Full: true, State: fleet.DeviceState{
		Counter: 1, LastSeen: seen, Digest: "d", AgentVersion: "1.4.0", PollInterval: time.Hour,
		Components: []wire.Component{{Name: "bcagent", Channel: "stable", Installed: "1.4.0", State: "up-to-date"}, d.comp},
		TUF:        wire.TUF{RootVersion: 3, TimestampVersion: 40}, TimestampSince: seen,
		Audit: wire.LogHead{Seq: 12, Hash: chainHash(d.id+"audit", 12)}, Consent: wire.LogHead{Seq: 2, Hash: chainHash(d.id+"consent", 2)}}})
}

// browser is a person's HTTP client: it keeps the dashboard's cookies
// itself (net/http's jar sends Secure cookies only over https; browsers
// send them to loopback too) and follows no redirects.
type browser struct {
	base    string
	hc      *http.Client
	cookies map[string]string
}

func (b *browser) get(target string) (int, string, error) {
	status, _, body, err := b.do(target)
	return status, body, err
}

// do asks for target (a path, or an absolute URL), sending the cookies
// to the dashboard only.
func (b *browser) do(target string) (int, http.Header, string, error) {
	if strings.HasPrefix(target, "/") {
		target = b.base + target
	}
	own := strings.HasPrefix(target, b.base+"/")
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		return 0, nil, "", err
	}
	if own {
		for k, v := range b.cookies {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, "", err
	}
	if own {
		for _, c := range resp.Cookies() {
			b.cookies[c.Name] = c.Value
		}
	}
	return resp.StatusCode, resp.Header, string(body), nil
}

// signIn runs the authorization-code flow as a viewer (mockoidc's groups
// claim), as a browser would: the dashboard sends it to the issuer, the
// issuer back to the callback, which sets the session cookie.
func (b *browser) signIn(m *mockoidc.MockOIDC) error {
	status, h, _, err := b.do("/signin?next=/fleet")
	if err != nil {
		return err
	}
	if status != http.StatusFound || !strings.HasPrefix(h.Get("Location"), m.AuthorizationEndpoint()) {
		return fmt.Errorf("/signin: status %d to %q, not the issuer", status, h.Get("Location"))
	}
	m.QueueUser(&mockoidc.MockUser{Subject: "bench", Email: "bench@vendor.example", Groups: []string{"viewer"}})
	status, h, body, err := b.do(h.Get("Location"))
	if err != nil {
		return err
	}
	if status != http.StatusFound {
		return fmt.Errorf("the issuer's authorize: %d %.200s", status, body)
	}
	status, _, body, err = b.do(h.Get("Location"))
	if err != nil {
		return err
	}
	if status != http.StatusOK || b.cookies["__Host-bcfleet-session"] == "" {
		return fmt.Errorf("the callback: %d, no session cookie: %.200s", status, body)
	}
	return nil
}

func dashTables(n, requests int, runs []*dashRun, notes []string) string {
	var s strings.Builder
	s.WriteString("| store | page | devices it selects | p50 | p99 | max | page size | goal |\n|---|---|---|---|---|---|---|---|\n")
	for _, run := range runs {
		for _, r := range run.results {
			sel := "-"
			if r.page.selects != nil {
				sel = strconv.Itoa(r.matching)
			}
			goal := "none: the count the page below is served from"
			if r.page.goal > 0 {
				verdict := "met"
				if r.quantile(0.99) >= r.page.goal {
					verdict = "**not met**"
				}
				goal = fmt.Sprintf("p99 < %d ms: %s", r.page.goal.Milliseconds(), verdict)
			}
			fmt.Fprintf(&s, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", run.store, r.page.name, sel, msCell(r.quantile(0.5)),
				msCell(r.quantile(0.99)), msCell(r.quantile(1)), kib(int64(r.bytes)), goal)
		}
	}
	for _, run := range runs {
		verdict := "met"
		if run.weight >= goalPageWeight {
			verdict = "**not met**"
		}
		fmt.Fprintf(&s, "| %s | rollouts page weight (%s) | - | - | - | - | %s | < %d KiB: %s |\n", run.store, strings.Join(append([]string{"the page"}, run.assets...), ", "),
			kib(int64(run.weight)), goalPageWeight>>10, verdict)
	}
	fmt.Fprintf(&s, "\n%d devices, each enrolled (sealed enrollee) and with one full report, in 500 sites, three models, notification-client 1.1.0 rolling out (installed, staged, awaiting authorization, failed; one device in fifty silent); seeding through the store took %s (PostgreSQL's tables then vacuumed and analyzed, as autovacuum leaves them after a bulk load). "+
		"One `bcfleet serve` process with the dashboard on, signed in as a viewer through an OpenID Connect provider in the benchmark's process; each page asked for %d times after one untimed request, one at a time over keep-alive HTTP on loopback, timed from sending to the last byte. "+
		"The rollouts page twice: with `--rollouts-max-age 0`, its numbers counted again for every request (the store's counting), and as served by default, on a server started afresh, its numbers kept 30 s and counted again in the background (the first, untimed request waits for the count that starts with the server). Every answer must be 200 with its page's content, each fleet page's count the number of seeded devices its filters select, and the rollouts chart the seeded counts, or the run fails. Sizes are uncompressed; p99 is the nearest rank of %d requests.\n",
		n, seedTimes(runs), requests, requests)
	for _, note := range notes {
		fmt.Fprintf(&s, "\n%s\n", note)
	}
	return s.String()
}

func seedTimes(runs []*dashRun) string {
	var parts []string
	for _, r := range runs {
		parts = append(parts, fmt.Sprintf("%.0f s on %s", r.seed.Seconds(), r.store))
	}
	return strings.Join(parts, ", ")
}
