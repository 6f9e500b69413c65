package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

// The fleet benchmark's honesty rules: the load generator's reports are
// accepted by a real `bcfleet serve` (200, no send_full), and any other
// answer (a refusal, a server error, the wrong success, a lost state)
// fails the comparison, naming the status. Nothing here looks at time.

// TestFleetLoad seeds 200 devices in SQLite, runs every phase against a
// real `bcfleet serve` and checks that every report was accepted; then a
// device whose key the service does not know is refused (401) and the
// phase fails.
func TestFleetLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bcfleet")
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "github.com/beckmanconnect/bcupdate/cmd/bcfleet").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	kekPath := filepath.Join(dir, "kek")
	if err := fleet.GenerateKEK(kekPath); err != nil {
		t.Fatal(err)
	}
	kek, err := fleet.OpenKEK("file://" + kekPath)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	devs := newDevices(n)
	phases := []loadPhase{
		{name: "first", first: true, conns: 8},
		{name: "max", duration: 500 * time.Millisecond, conns: 8},
		{name: "rate", rate: 400, duration: 500 * time.Millisecond, conns: 16},
	}
	ctx := context.Background()
	dbPath := filepath.Join(dir, "fleet.db")
	run, err := bcfleetRun(ctx, "SQLite", filepath.Join(bin, "bcfleet"), "sqlite:"+dbPath, kekPath, kek, devs, phases, 0, func() (int64, string, error) { return 1, "test", nil })
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range run.phases {
		if r.completed == 0 || r.status[http.StatusOK] != r.completed || r.transport != 0 || r.sendFull != 0 {
			t.Errorf("phase %s: %d completed, %s, %d send_full", phases[i].name, r.completed, r.statuses(), r.sendFull)
		}
	}
	if r := run.phases[0]; r.completed != n {
		t.Errorf("first reports: %d completed, want %d", r.completed, n)
	}
	if r := run.phases[2]; r.completed != 200 {
		t.Errorf("fixed rate: %d completed, want 400/s × 0.5 s = 200", r.completed)
	}
	if run.hwm <= 0 {
		t.Errorf("no peak RSS of bcfleet serve: %d", run.hwm)
	}

	// The same store again, with one device whose key is not the
	// enrolled one: bcfleet refuses its report, and the phase fails.
	c, addr, err := startBcfleet(filepath.Join(bin, "bcfleet"), "sqlite:"+dbPath, kekPath, filepath.Join(dir, "again.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop(syscall.SIGTERM, 10*time.Second)
	target := newTarget("bcfleet serve", "http://"+addr, http.StatusOK, true)
	defer target.close()
	forged := newDevices(n + 1)[n]
	forged.id = devs[7].id
	forged.counter = devs[7].counter
	mixed := append(append([]*simDevice{}, devs[:10]...), forged)
	r := runPhase(ctx, target, mixed, loadPhase{name: "first", first: true, conns: 4}, 0, 0)
	err = r.check(target, "first")
	if err == nil || !strings.Contains(err.Error(), "1 of 11 reports failed") || !strings.Contains(err.Error(), "1 × 401") || !strings.Contains(err.Error(), "10 × 200") {
		t.Errorf("a refused report: %v, want the failure counted by status (10 × 200, 1 × 401)", err)
	}
	target.close()
	if err := c.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Error(err)
	}
	if n := liveChildren(); n != 0 {
		t.Errorf("%d children still running", n)
	}
}

// TestFleetCheck: every way a server can answer other than with the work
// done fails the phase, with the counts by status.
func TestFleetCheck(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}\n"))
	}
	var calls atomic.Int64
	cases := []struct {
		name   string
		want   int // the target's status of work done
		device bool
		h      http.HandlerFunc
		errs   []string // in the error; none for a pass
	}{
		{"all accepted", http.StatusOK, true, ok, nil},
		{"nginx 204", http.StatusNoContent, false, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, nil},
		{"some 500", http.StatusOK, true, func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1)%4 == 0 {
				http.Error(w, `{"error":"database is locked","reason":""}`, http.StatusInternalServerError)
				return
			}
			ok(w, r)
		}, []string{"× 500", "× 200", "database is locked"}},
		{"all 409", http.StatusOK, true, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(wire.ErrorResponse{Error: "replayed", Reason: wire.ReasonReplayed})
		}, []string{"10 × 409", "10 of 10 reports failed"}},
		{"200 where 204 is the work", http.StatusNoContent, false, ok, []string{"10 × 200", "want every one 204"}},
		{"lost state", http.StatusOK, true, func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"send_full":true}`))
		}, []string{"answered send_full"}},
		{"not a report response", http.StatusOK, true, func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("OK"))
		}, []string{"not a report response"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			target := newTarget(tc.name, srv.URL, tc.want, tc.device)
			defer target.close()
			devs := newDevices(10)
			ctx := context.Background()
			// First reports (full), then heartbeats only: a send_full
			// is only wrong in answer to a heartbeat.
			r := runPhase(ctx, target, devs, loadPhase{name: "first", first: true, conns: 2}, 0, 0)
			err := r.check(target, "first")
			if err == nil {
				r2 := &phaseResult{status: map[int]int{}}
				for _, d := range devs {
					target.send(ctx, d, false, time.Time{}, r2)
				}
				r.completed += r2.completed
				r.sendFull += r2.sendFull
				r.transport += r2.transport
				for c, n := range r2.status {
					r.status[c] += n
				}
				if r.firstErr == "" {
					r.firstErr = r2.firstErr
				}
				r.scheduled = 0
				err = r.check(target, "first and heartbeats")
			}
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("a %s server passed", tc.name)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not say %q: %v", want, err)
				}
			}
			if !strings.Contains(err.Error(), srv.URL) {
				t.Errorf("error does not name the URL %s: %v", srv.URL, err)
			}
		})
	}
}

// TestSimReport: a simulated device's reports are what the service takes:
// signed by its key, a heartbeat within wire.MaxHeartbeat, counters that
// grow, and a heartbeat's digest that of the last accepted full report.
func TestSimReport(t *testing.T) {
	d := newDevices(1)[0]
	body, h, digest, err := d.report(true)
	if err != nil {
		t.Fatal(err)
	}
	pub := d.key.Public().(ed25519.PublicKey)
	if err := wire.VerifyReport(pub, body, h.Get(wire.SignatureHeader)); err != nil {
		t.Fatal(err)
	}
	var full wire.Report
	if err := json.Unmarshal(body, &full); err != nil || full.Heartbeat || full.Digest != digest || len(full.Components) == 0 || full.DeviceID != h.Get(wire.DeviceHeader) {
		t.Fatalf("full report: %v %+v", err, full)
	}
	d.digest = digest
	body, h, hd, err := d.report(false)
	if err != nil {
		t.Fatal(err)
	}
	var hb wire.Report
	if err := json.Unmarshal(body, &hb); err != nil || !hb.Heartbeat || hb.Digest != digest || hd != "" || hb.Counter <= full.Counter {
		t.Fatalf("heartbeat: %v %+v", err, hb)
	}
	if len(body) > wire.MaxHeartbeat {
		t.Errorf("heartbeat of %d bytes, more than %d", len(body), wire.MaxHeartbeat)
	}
	if err := wire.VerifyReport(pub, body, h.Get(wire.SignatureHeader)); err != nil {
		t.Fatal(err)
	}
}
