package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/sqlstore"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/pgtest"
)

// The fleet benchmark: simulated devices, each with its own ed25519 key,
// send real signed reports (fleet/wire, signed with wire.SignReport as the
// agent does) over keep-alive HTTP to one separate `bcfleet serve`
// process, on SQLite and on PostgreSQL, and the same load goes to a plain
// nginx that answers 204 (the ceiling: an HTTP server that does nothing).
//
// The honesty rules: every response must have the status the server
// gives to work done (200 from bcfleet, 204 from nginx) and no request may
// fail in transport; any other status or error fails the run, with the
// counts by status. A bcfleet 200 to a heartbeat must not ask for a full
// report (send_full: the service lost the device's state). The phases
// with a fixed number of reports (the first reports, the fixed rate) must
// complete every one of them on every server, so the sides did the same
// work.

// Defaults of the fleet benchmark (flags -fleet-devices, -fleet-duration,
// -fleet-rate).
const (
	fleetDevices  = 100_000
	fleetDuration = 20 * time.Second
	// fleetRate is the goal: 100,000 devices reporting once a minute.
	fleetRate = 1700
	// fleetConns is how many reports are in flight in the closed-loop
	// phases, and the most connections of the fixed-rate phase.
	fleetConns = 32
	// fullEvery: one report in fullEvery is a full one (a change), the
	// rest heartbeats.
	fullEvery = 10
)

// Goals (issue 16), reported beside the numbers, never asserted.
const (
	goalRate = 1700
	goalP99  = 100 * time.Millisecond
	goalRSS  = 256 << 20
)

// simDevice is one simulated enrolled device: its key, and what the
// agent keeps in fleet.json (counter, digest of the last accepted full
// report). mu orders its reports, as one agent sends one at a time.
type simDevice struct {
	id  string
	key ed25519.PrivateKey

	mu        sync.Mutex
	counter   uint64
	timestamp int64  // trusted timestamp version: each change advances it
	digest    string // of the last full report a server accepted
}

// newDevices makes n devices with keys derived from their index (fast and
// reproducible; the service sees ordinary ed25519 keys) and IDs shaped like
// the service's (dev- and 16 base32 characters).
func newDevices(n int) []*simDevice {
	devs := make([]*simDevice, n)
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	var wg sync.WaitGroup
	const parts = 4
	for p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < n; i += parts {
				seed := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("bcupdate-bench-device-"), uint64(i)))
				idb := make([]byte, 10)
				binary.BigEndian.PutUint64(idb[2:], uint64(i))
				copy(idb[:2], seed[30:])
				devs[i] = &simDevice{id: "dev-" + strings.ToLower(enc.EncodeToString(idb)), key: ed25519.NewKeyFromSeed(seed[:]), timestamp: 40}
			}
		}()
	}
	wg.Wait()
	return devs
}

// deviceState is what a full report says; its sha256 is the report's
// digest, as the agent's is of its own state.
type deviceState struct {
	AgentVersion string           `json:"agent_version"`
	PollInterval string           `json:"poll_interval"`
	Components   []wire.Component `json:"components"`
	TUF          wire.TUF         `json:"tuf"`
	Audit        wire.LogHead     `json:"audit"`
	Consent      wire.LogHead     `json:"consent"`
}

func chainHash(s string, seq int64) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s-%d", s, seq))
	return hex.EncodeToString(h[:])
}

// report makes the device's next report (full or heartbeat), signed: the
// body and the headers the agent sends. The caller holds d.mu.
func (d *simDevice) report(full bool) (body []byte, headers http.Header, digest string, err error) {
	d.counter++
	r := wire.Report{DeviceID: d.id, Counter: d.counter, Time: time.Now().UTC()}
	if full || d.digest == "" {
		// A change: the trusted timestamp advanced (what changes most
		// often on a device), so the digest is new.
		d.timestamp++
		st := deviceState{AgentVersion: "1.4.0", PollInterval: "1m0s",
			Components: []wire.Component{
				{Name: "notification-client", Installed: "2.3.1", Channel: "stable", State: "up-to-date", ActiveFeatures: []string{"remote-session"}},
				{Name: "instrument-bridge", Installed: "1.9.0", Staged: "1.10.0", Channel: "stable", State: "awaiting-authorization", Reason: "waits for a person's authorization", PendingFeatures: []string{"bridge-v2"}},
			},
			TUF: wire.TUF{RootVersion: 3, TimestampVersion: d.timestamp},
			// The logs' heads stay: the service's checks of their
			// chains are not what is measured.
			Audit:   wire.LogHead{Seq: 12, Hash: chainHash(d.id+"audit", 12)},
			Consent: wire.LogHead{Seq: 2, Hash: chainHash(d.id+"consent", 2)},
		}
		b, err := json.Marshal(st)
		if err != nil {
			return nil, nil, "", err
		}
		sum := sha256.Sum256(b)
		digest = hex.EncodeToString(sum[:])
		r.Digest, r.AgentVersion, r.PollInterval, r.Components = digest, st.AgentVersion, st.PollInterval, st.Components
		r.TUF, r.Audit, r.Consent = &st.TUF, &st.Audit, &st.Consent
	} else {
		r.Heartbeat, r.Digest = true, d.digest
	}
	body, err = json.Marshal(r)
	if err != nil {
		return nil, nil, "", err
	}
	headers = http.Header{}
	headers.Set("Content-Type", "application/json")
	headers.Set("User-Agent", "bcagent/1.4.0")
	headers.Set(wire.DeviceHeader, d.id)
	headers.Set(wire.SignatureHeader, wire.SignReport(d.key, body))
	return body, headers, digest, nil
}

// fleetTarget is a server the load goes to.
type fleetTarget struct {
	name string
	url  string // base
	want int    // the status of work done
	// device says the server keeps device state (bcfleet): a heartbeat's
	// answer must not ask for a full report.
	device bool
	client *http.Client
}

func newTarget(name, base string, want int, device bool) *fleetTarget {
	tr := &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256, IdleConnTimeout: time.Minute}
	return &fleetTarget{name: name, url: base + wire.ReportPath, want: want, device: device,
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (t *fleetTarget) close() { t.client.CloseIdleConnections() }

// phaseResult is what one phase of load did on one server.
type phaseResult struct {
	scheduled int // reports the phase meant to send (0: as many as it could)
	completed int // responses, of any status
	status    map[int]int
	transport int // requests that got no response
	sendFull  int // heartbeats answered send_full
	firstErr  string
	lat       []time.Duration
	elapsed   time.Duration
	cpu       float64 // server CPU seconds during the phase (-1: unknown)
	dbCPU     float64 // the database server's CPU seconds (-1: none or unknown)
	mu        sync.Mutex
}

func (r *phaseResult) rps() float64 { return float64(r.completed) / r.elapsed.Seconds() }

func (r *phaseResult) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*q))]
}

// statuses is the response count by status, such as "1000 × 200".
func (r *phaseResult) statuses() string {
	codes := make([]int, 0, len(r.status))
	for c := range r.status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d × %d", r.status[c], c))
	}
	if r.transport > 0 {
		parts = append(parts, fmt.Sprintf("%d transport errors", r.transport))
	}
	return strings.Join(parts, ", ")
}

// check fails unless every report got t's status of work done, none
// failed in transport, no heartbeat was answered send_full, and a phase
// with a set number of reports completed every one.
func (r *phaseResult) check(t *fleetTarget, phase string) error {
	var errs []string
	bad := r.transport
	for c, n := range r.status {
		if c != t.want {
			bad += n
		}
	}
	if bad > 0 {
		errs = append(errs, fmt.Sprintf("%d of %d reports failed (want every one %d): %s; first: %s", bad, r.completed+r.transport, t.want, r.statuses(), r.firstErr))
	}
	if r.sendFull > 0 {
		errs = append(errs, fmt.Sprintf("%d heartbeats were answered send_full: the service lost what a device reported", r.sendFull))
	}
	if r.completed == 0 {
		errs = append(errs, "no report completed")
	} else if r.scheduled > 0 && r.completed != r.scheduled {
		errs = append(errs, fmt.Sprintf("%d of %d reports completed", r.completed, r.scheduled))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s, %s (%s): %s", t.name, phase, t.url, strings.Join(errs, "; "))
	}
	return nil
}

// send sends device d's next report to t and records the outcome; since
// is when the latency starts (the request's start, or when it was
// scheduled).
func (t *fleetTarget) send(ctx context.Context, d *simDevice, full bool, since time.Time, r *phaseResult) {
	d.mu.Lock()
	defer d.mu.Unlock()
	body, headers, digest, err := d.report(full)
	heartbeat := digest == ""
	var status int
	var errMsg string
	var lat time.Duration
	sendFull := false
	if err == nil {
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, "POST", t.url, bytes.NewReader(body))
		if err == nil {
			req.Header = headers
			if since.IsZero() {
				since = time.Now()
			}
			var resp *http.Response
			resp, err = t.client.Do(req)
			if err == nil {
				data, rerr := io.ReadAll(io.LimitReader(resp.Body, wire.MaxBody))
				resp.Body.Close()
				lat = time.Since(since)
				status = resp.StatusCode
				switch {
				case rerr != nil:
					err = rerr
				case status != t.want:
					errMsg = fmt.Sprintf("device %s: %d %q", d.id, status, bytes.TrimSpace(data[:min(len(data), 200)]))
				case t.device:
					var rr wire.ReportResponse
					if jerr := json.Unmarshal(data, &rr); jerr != nil {
						errMsg = fmt.Sprintf("device %s: the answer is not a report response: %v", d.id, jerr)
						status = -1
					}
					sendFull = heartbeat && rr.SendFull
				}
			}
		}
	}
	if err == nil && status == t.want && !heartbeat {
		d.digest = digest
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.transport++
		if r.firstErr == "" {
			r.firstErr = fmt.Sprintf("device %s: %v", d.id, err)
		}
		return
	}
	r.completed++
	r.status[status]++
	r.lat = append(r.lat, lat)
	if sendFull {
		r.sendFull++
	}
	if errMsg != "" && r.firstErr == "" {
		r.firstErr = errMsg
	}
}

// loadPhase is one way of sending reports.
type loadPhase struct {
	name string
	// first: every device sends one full report (a fleet that just
	// enrolled), conns at a time.
	first bool
	// rate > 0: reports start at this rate for duration whatever the
	// server does (open loop), latency counted from when each was due;
	// else conns in flight for duration (closed loop: as fast as the
	// server goes).
	rate     int
	duration time.Duration
	conns    int
}

func (p loadPhase) label() string {
	switch {
	case p.first:
		return fmt.Sprintf("first report of every device (full), %d in flight", p.conns)
	case p.rate > 0:
		return fmt.Sprintf("fixed rate %d/s for %v (1 in %d full)", p.rate, p.duration, fullEvery)
	}
	return fmt.Sprintf("as fast as it goes, %d in flight, %v (1 in %d full)", p.conns, p.duration, fullEvery)
}

// runPhase sends p's load to t from devs; pgid is the server's process
// group, for its CPU time, and dbPID the database server's leader
// process, whose descendants are counted with it (0: not measured).
func runPhase(ctx context.Context, t *fleetTarget, devs []*simDevice, p loadPhase, pgid, dbPID int) *phaseResult {
	r := &phaseResult{status: map[int]int{}, cpu: -1, dbCPU: -1}
	var cpu0, dbCPU0 float64
	okCPU, okDB := false, false
	if pgid > 0 {
		cpu0, okCPU = groupCPU(pgid)
	}
	if dbPID > 0 {
		dbCPU0, okDB = treeCPU(dbPID)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	switch {
	case p.first:
		r.scheduled = len(devs)
		r.lat = make([]time.Duration, 0, len(devs))
		for range p.conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < int64(len(devs)); i = next.Add(1) - 1 {
					t.send(ctx, devs[i], true, time.Time{}, r)
				}
			}()
		}
	case p.rate > 0:
		total := int(p.duration.Seconds() * float64(p.rate))
		r.scheduled = total
		r.lat = make([]time.Duration, 0, total)
		due := make(chan time.Time, total)
		interval := time.Second / time.Duration(p.rate)
		go func() {
			defer close(due)
			for i := range total {
				at := start.Add(time.Duration(i) * interval)
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				due <- at
			}
		}()
		for range p.conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for at := range due {
					i := next.Add(1) - 1
					t.send(ctx, devs[int(i)%len(devs)], i%fullEvery == 0, at, r)
				}
			}()
		}
	default:
		deadline := start.Add(p.duration)
		for range p.conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					i := next.Add(1) - 1
					t.send(ctx, devs[int(i)%len(devs)], i%fullEvery == 0, time.Time{}, r)
				}
			}()
		}
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	if okCPU {
		if cpu1, ok := groupCPU(pgid); ok {
			r.cpu = cpu1 - cpu0
		}
	}
	if okDB {
		if cpu1, ok := treeCPU(dbPID); ok {
			r.dbCPU = cpu1 - dbCPU0
		}
	}
	slices.Sort(r.lat)
	return r
}

// fleetPhases are the phases every server gets, in order.
func fleetPhases(o options) []loadPhase {
	d := o.fleetDuration
	return []loadPhase{
		{name: "first", first: true, conns: fleetConns},
		{name: "max", duration: d, conns: fleetConns},
		{name: "rate", rate: o.fleetRate, duration: d, conns: 2 * fleetConns},
	}
}

// fleetRun is one server's results.
type fleetRun struct {
	name    string
	phases  []*phaseResult
	seed    time.Duration // enrolling every device (0: none, nginx)
	hwm     int64         // peak RSS of the server process (-1: unknown)
	dbBytes int64         // database size after the run (-1: none)
	dbPID   int           // the database server's leader process (0: in the server)
	db      string        // what dbBytes counts
}

// fleetWorkspace is what the fleet and dashboard sections start from: the
// bcfleet binary (built), a temporary directory (the caller removes it)
// and a new key-encryption key in it.
func fleetWorkspace(bin, prefix string) (bcfleet, dir, kekPath string, kek fleet.KEK, err error) {
	bcfleet = filepath.Join(bin, "bcfleet")
	if _, err := os.Stat(bcfleet); err != nil {
		return "", "", "", nil, fmt.Errorf("%s: %w (make build)", bcfleet, err)
	}
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", "", "", nil, err
	}
	kekPath = filepath.Join(dir, "kek")
	if err = fleet.GenerateKEK(kekPath); err == nil {
		kek, err = fleet.OpenKEK("file://" + kekPath)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", "", "", nil, err
	}
	return bcfleet, dir, kekPath, kek, nil
}

// fleetBench: the fleet service's reports benchmark (see the top of this
// file). Devices are enrolled through the store (sqlstore's AddDevice,
// each with its enrollee sealed by the service's key as the enrollment
// endpoint does), not the endpoint: that is what a report finds, and it
// takes seconds, not minutes.
func fleetBench(o options) (string, error) {
	o = fleetDefaults(o)
	n := o.fleetDevices
	bcfleet, dir, kekPath, kek, err := fleetWorkspace(o.bin, "bcupdate-fleet-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	devs := newDevices(n)
	ctx := context.Background()
	phases := fleetPhases(o)
	var runs []*fleetRun
	var notes []string

	// The ceiling first: nginx answering 204 to every report.
	if nginx, err := exec.LookPath("nginx"); err == nil {
		run, err := nginxFleet(ctx, nginx, filepath.Join(dir, "nginx"), devs, phases)
		if err != nil {
			return "", fmt.Errorf("nginx: %w", err)
		}
		runs = append(runs, run)
	} else {
		notes = append(notes, "nginx is not installed (run make deps): no ceiling.")
	}

	sqlitePath := filepath.Join(dir, "fleet.db")
	run, err := bcfleetRun(ctx, "SQLite", bcfleet, "sqlite:"+sqlitePath, kekPath, kek, devs, phases, 0, func() (int64, string, error) {
		var total int64
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if fi, err := os.Stat(sqlitePath + suffix); err == nil {
				total += fi.Size()
			}
		}
		return total, "the database file (and -wal, -shm if any) after the server stopped", nil
	})
	if err != nil {
		return "", fmt.Errorf("SQLite: %w", err)
	}
	runs = append(runs, run)

	switch {
	case pgtest.BinDir() == "":
		notes = append(notes, "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb; run make deps): not measured.")
	case o.quick && os.Getenv("BENCH_FLEET_POSTGRES") == "":
		notes = append(notes, "PostgreSQL: not run with -quick (set BENCH_FLEET_POSTGRES=1).")
	default:
		pg, dsn, err := startPostgres(filepath.Join(dir, "pg"))
		if err != nil {
			return "", err
		}
		run, err := bcfleetRun(ctx, "PostgreSQL "+pgVersion(), bcfleet, dsn, kekPath, kek, devs, phases, pg.cmd.Process.Pid, func() (int64, string, error) {
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				return 0, "", err
			}
			defer db.Close()
			var size int64
			err = db.QueryRowContext(ctx, "SELECT pg_database_size(current_database())").Scan(&size)
			return size, "pg_database_size (tables, indexes, catalogs) after the run", err
		})
		if serr := pg.stop(syscall.SIGINT, 60*time.Second); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return "", fmt.Errorf("PostgreSQL: %w", err)
		}
		runs = append(runs, run)
	}
	return fleetTables(o, n, phases, runs, notes), nil
}

// fleetDefaults fills what o leaves zero; -quick means 200 devices and
// one second a phase.
func fleetDefaults(o options) options {
	if o.fleetDevices <= 0 {
		o.fleetDevices = fleetDevices
	}
	if o.fleetDuration <= 0 {
		o.fleetDuration = fleetDuration
	}
	if o.fleetRate <= 0 {
		o.fleetRate = fleetRate
	}
	if o.quick {
		o.fleetDevices = min(o.fleetDevices, 200)
		o.fleetDuration = min(o.fleetDuration, time.Second)
	}
	return o
}

// nginxFleet sends the phases' load to an nginx that answers 204.
func nginxFleet(ctx context.Context, nginx, prefix string, devs []*simDevice, phases []loadPhase) (*fleetRun, error) {
	c, addr, err := startNginxServer(nginx, prefix, "location / { return 204; }")
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.stop(syscall.SIGQUIT, 10*time.Second)
		}
	}()
	t := newTarget("nginx", "http://"+addr, http.StatusNoContent, false)
	defer t.close()
	run := &fleetRun{name: "nginx (204, the ceiling)", hwm: -1, dbBytes: -1}
	for _, p := range phases {
		fmt.Printf("fleet: %s: %s\n", run.name, p.label())
		r := runPhase(ctx, t, devs, p, c.pgid, 0)
		if err := r.check(t, p.name); err != nil {
			return nil, err
		}
		run.phases = append(run.phases, r)
	}
	// Our idle keep-alive connections closed first: a graceful stop
	// waits for the connections it has.
	t.close()
	stopped = true
	return run, c.stop(syscall.SIGQUIT, 10*time.Second)
}

// bcfleetRun enrolls devs in the store dsn names, starts `bcfleet serve`
// on it and sends it the phases' load; dbSize measures the database after
// the server stopped. dbPID is the database server's leader process, for
// its CPU time (0: the store runs inside bcfleet serve).
func bcfleetRun(ctx context.Context, name, bcfleet, dsn, kekPath string, kek fleet.KEK, devs []*simDevice, phases []loadPhase, dbPID int, dbSize func() (int64, string, error)) (*fleetRun, error) {
	run := &fleetRun{name: name, hwm: -1, dbPID: dbPID}
	fmt.Printf("fleet: %s: enrolling %d devices through the store\n", name, len(devs))
	var err error
	if run.seed, err = seedDevices(ctx, dsn, kek, devs); err != nil {
		return nil, err
	}
	// A new store: every device's state starts again, as a new
	// enrollment's does.
	for _, d := range devs {
		d.digest = ""
	}
	logPath := filepath.Join(filepath.Dir(kekPath), "bcfleet-"+strings.Fields(name)[0]+".log")
	c, addr, err := startBcfleet(bcfleet, dsn, kekPath, logPath)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.stop(syscall.SIGTERM, 10*time.Second)
		}
	}()
	t := newTarget("bcfleet serve ("+name+")", "http://"+addr, http.StatusOK, true)
	defer t.close()
	for _, p := range phases {
		fmt.Printf("fleet: %s: %s\n", name, p.label())
		r := runPhase(ctx, t, devs, p, c.pgid, dbPID)
		if err := r.check(t, p.name); err != nil {
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%w\nserver log:\n%s", err, tail(b, 2000))
		}
		run.phases = append(run.phases, r)
	}
	if _, _, hwm, err := procRSS(c.cmd.Process.Pid); err == nil {
		run.hwm = hwm
	}
	t.close()
	stopped = true
	if err := c.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		return nil, err
	}
	if run.dbBytes, run.db, err = dbSize(); err != nil {
		return nil, fmt.Errorf("database size: %w", err)
	}
	return run, nil
}

// startBcfleet starts `bcfleet serve` on the store dsn names, on a free
// loopback port; stop it with c.stop(syscall.SIGTERM, ...).
func startBcfleet(bcfleet, dsn, kekPath, logPath string) (*child, string, error) {
	addr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd := exec.Command(bcfleet, "serve", "--db", dsn, "--kek", "file://"+kekPath, "--addr", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	c, err := start(cmd)
	if err != nil {
		return nil, "", err
	}
	if err := waitReady(c, addr, logPath); err != nil {
		c.stop(syscall.SIGTERM, 10*time.Second)
		return nil, "", err
	}
	return c, addr, nil
}

func tail(b []byte, n int) []byte { return b[max(0, len(b)-n):] }

// seedDevices enrolls devs in the store at dsn directly, each with what
// the enrollment endpoint stores: its public key, the enrollee sealed
// under the service's key and the keyed hash of the email, the
// instrument.
func seedDevices(ctx context.Context, dsn string, kek fleet.KEK, devs []*simDevice) (time.Duration, error) {
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
			for i := next.Add(1) - 1; i < int64(len(devs)); i = next.Add(1) - 1 {
				if err := seedOne(ctx, st, kek, devs[i], int(i)); err != nil {
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
	return time.Since(start), st.Close()
}

func seedOne(ctx context.Context, st *sqlstore.Store, kek fleet.KEK, d *simDevice, i int) error {
	email := fmt.Sprintf("lab.tech%d@hospital-%d.example", i, i%500)
	enrollee, err := json.Marshal(wire.Enrollee{Email: email, Name: fmt.Sprintf("Lab Technician %d", i)})
	if err != nil {
		return err
	}
	sealed, err := fleet.Seal(kek, d.id, enrollee)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	err = st.AddDevice(ctx, fleet.Device{ID: d.id, Site: fmt.Sprintf("site-%03d", i%500), PublicKey: d.key.Public().(ed25519.PublicKey),
		Enrolled: now, Sealed: sealed, EmailHash: fleet.EmailHash(kek, email),
		Instrument: wire.Instrument{Model: "DxH 900", ID: fmt.Sprintf("INST-%07d", i), Serial: fmt.Sprintf("SN%09d", i)},
		State:      fleet.DeviceState{AgentVersion: "1.4.0"}})
	if err != nil {
		return fmt.Errorf("enrolling device %s: %w", d.id, err)
	}
	return nil
}

// startPostgres makes a throwaway cluster in dir with initdb from
// pgtest.BinDir() and runs postgres on a free loopback port with
// PostgreSQL's default durability (fsync on), as the postgres user when we
// are root. Unlike pgtest.Start (which needs a testing.TB and leaves the
// server to pg_ctl), postgres is our child, in its own process group:
// stopping it (SIGINT, a fast shutdown) reaps every backend. It returns
// the DSN of a new database "fleet".
func startPostgres(dir string) (*child, string, error) {
	bin := pgtest.BinDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, "", fmt.Errorf("running as root, PostgreSQL needs an unprivileged user: no user postgres (%v)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, "", err
		}
		// The parents must let postgres through (os.MkdirTemp makes 0700).
		if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
			return nil, "", err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "bcfleet", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("initdb: %v\n%s", err, out)
	}
	addr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", port, "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	c, err := start(cmd)
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*child, string, error) {
		c.stop(syscall.SIGINT, 30*time.Second)
		b, _ := os.ReadFile(logPath)
		return nil, "", fmt.Errorf("postgres: %w\n%s", err, tail(b, 2000))
	}
	if err := waitReady(c, addr, logPath); err != nil {
		return fail(err)
	}
	admin, err := sql.Open("pgx", "postgres://bcfleet@"+addr+"/postgres?sslmode=disable")
	if err != nil {
		return fail(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for { // it listens before it accepts sessions
		if err = admin.PingContext(ctx); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fail(err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE fleet"); err != nil {
		return fail(err)
	}
	return c, "postgres://bcfleet@" + addr + "/fleet?sslmode=disable", nil
}

// pgVersion is the major version of pgtest.BinDir()'s PostgreSQL.
func pgVersion() string {
	return filepath.Base(filepath.Dir(pgtest.BinDir()))
}

func msCell(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// fleetTables writes the two tables: every phase on every server, and
// each store against the goal.
func fleetTables(o options, n int, phases []loadPhase, runs []*fleetRun, notes []string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "| server | load | reports | reports/s | p50 | p99 | responses | server CPU µs/report | database CPU µs/report |\n|---|---|---|---|---|---|---|---|---|\n")
	for i, p := range phases {
		for _, run := range runs {
			r := run.phases[i]
			cpu := "-"
			if r.cpu >= 0 {
				cpu = fmt.Sprintf("%.0f", r.cpu*1e6/float64(r.completed))
			}
			dbCPU := "-"
			switch {
			case r.dbCPU >= 0:
				dbCPU = fmt.Sprintf("%.0f", r.dbCPU*1e6/float64(r.completed))
			case run.dbBytes >= 0 && run.dbPID == 0:
				dbCPU = "in the server"
			}
			fmt.Fprintf(&s, "| %s | %s | %d | %.0f | %s | %s | %s | %s | %s |\n", run.name, p.label(), r.completed, r.rps(),
				msCell(r.quantile(0.50)), msCell(r.quantile(0.99)), r.statuses(), cpu, dbCPU)
		}
	}
	fmt.Fprintf(&s, "\n| store | enrolling %d devices (through the store) | sustained reports/s (%d in flight) | at %d/s: p50 / p99 | peak RSS of `bcfleet serve` (VmHWM) | database bytes per device | goal: ≥ %d/s, p99 < %d ms, RSS < %s |\n|---|---|---|---|---|---|---|\n",
		n, fleetConns, o.fleetRate, goalRate, goalP99.Milliseconds(), mib(goalRSS))
	for _, run := range runs {
		if run.dbBytes < 0 {
			continue // nginx
		}
		maxR, rate := run.phases[1], run.phases[2]
		met := maxR.rps() >= goalRate && o.fleetRate >= goalRate && rate.quantile(0.99) < goalP99 && run.hwm > 0 && run.hwm < goalRSS
		verdict := "met"
		if !met {
			verdict = "**not met**"
		}
		fmt.Fprintf(&s, "| %s | %.1f s (%.0f/s) | %.0f | %s / %s | %s | %d | %s |\n", run.name, run.seed.Seconds(), float64(n)/run.seed.Seconds(),
			maxR.rps(), msCell(rate.quantile(0.50)), msCell(rate.quantile(0.99)), mib(run.hwm), run.dbBytes/int64(n), verdict)
	}
	fmt.Fprintf(&s, "\n%d simulated devices, each with its own ed25519 key, send real signed reports (fleet/wire, signed as the agent signs) over keep-alive HTTP from this process to one separate server process on the same 2 cores; every response must be the server's status of work done (200 from `bcfleet serve`, 204 from nginx) and no heartbeat may be answered send_full, or the run fails. "+
		"p50/p99: from sending to the whole answer; at the fixed rate, from when the report was due (an open loop: a server that falls behind pays for the queue). Server CPU: the server's user+system time over the reports completed (nginx: master and workers); database CPU: the same for PostgreSQL's processes (postmaster, backends, background workers, and the workers that exited during the phase); SQLite runs inside the server. "+
		"Database bytes per device: %s. Both stores run with their durable defaults: SQLite WAL with synchronous=FULL, PostgreSQL with fsync on.\n",
		n, dbNotes(runs))
	for _, note := range notes {
		fmt.Fprintf(&s, "\n%s\n", note)
	}
	return s.String()
}

func dbNotes(runs []*fleetRun) string {
	var parts []string
	for _, run := range runs {
		if run.dbBytes >= 0 {
			parts = append(parts, fmt.Sprintf("%s, %s (%s)", run.name, run.db, mib(run.dbBytes)))
		}
	}
	if len(parts) == 0 {
		return "none measured"
	}
	return strings.Join(parts, "; ")
}
