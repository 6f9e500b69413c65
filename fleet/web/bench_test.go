package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

// BenchmarkPages measures the server time of the dashboard's pages on a
// fleet of BCFLEET_BENCH_DEVICES devices (default 100,000) in SQLite,
// each with a full report: the mean (ns/op), the first request
// (first-ms), p99-ms of the others and the page's size.
// Every answer must be 200 with the page's marker, or the run fails.
//
//	go test ./fleet/web -run '^$' -bench Pages -benchtime 30x
func BenchmarkPages(b *testing.B) {
	n := 100_000
	if v := os.Getenv("BCFLEET_BENCH_DEVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	e := newEnvSeeded(b, func(st fleet.Store, kek fleet.KEK) { seedMany(b, st, kek, n) })
	b.Logf("seeded %d devices in %s", n, time.Since(start).Round(time.Second))
	c := e.client(b)
	c.signIn(viewer, "/fleet")
	for _, pg := range []struct{ name, path, marker string }{
		{"fleet", "/fleet", "devices match"},
		{"fleet-next-page", "/fleet?after=dev-0050000", "devices match"},
		{"fleet-site", "/fleet?site=site-042", "devices match"},
		{"fleet-failed", "/fleet?component=notification-client&state=failed", "devices match"},
		{"fleet-version-site", "/fleet?component=notification-client&version=1.1.0&site=site-007", "devices match"},
		{"fleet-search", "/fleet?q=inst-00471", "devices match"},
		{"fleet-model", "/fleet?model=AQUIOS+CL", "devices match"},
		{"fleet-online", "/fleet?online=online", "devices match"},
		{"rollouts", "/rollouts", "notification-client"},
	} {
		b.Run(pg.name, func(b *testing.B) {
			var times []time.Duration
			size := 0
			for b.Loop() {
				t0 := time.Now()
				r := c.get(pg.path)
				times = append(times, time.Since(t0))
				if r.status != 200 || !strings.Contains(r.body, pg.marker) {
					b.Fatalf("%s: %d %.300s", pg.path, r.status, r.body)
				}
				size = len(r.body)
			}
			// The first request may read for the rest (the rollouts
			// page's numbers): reported apart.
			b.ReportMetric(float64(times[0].Microseconds())/1000, "first-ms")
			if len(times) > 1 {
				times = times[1:]
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[(len(times)*99)/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(size)/1024, "KiB")
		})
	}
}

// seedMany enrolls n devices through the store, as enrollment stores
// them, each with a full report: notification-client 1.1.0 rolling out
// (installed, staged, awaiting, failed), 500 sites, three models.
func seedMany(b testing.TB, st fleet.Store, kek fleet.KEK, n int) {
	ctx := context.Background()
	now := time.Now()
	models := []string{"Navios EX", "DxFLEx", "AQUIOS CL"}
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				id := fmt.Sprintf("dev-%07d", i)
				email := fmt.Sprintf("tech%d@hospital.example", i)
				plain, _ := json.Marshal(wire.Enrollee{Email: email, Name: fmt.Sprintf("Tech %d", i)})
				sealed, err := fleet.Seal(kek, id, plain)
				if err == nil {
					err = st.AddDevice(ctx, fleet.Device{ID: id, Site: fmt.Sprintf("site-%03d", i%500), PublicKey: []byte(fmt.Sprintf("%032d", i)),
						Enrolled: now, Sealed: sealed, EmailHash: fleet.EmailHash(kek, email),
						Instrument: wire.Instrument{Model: models[i%3], ID: fmt.Sprintf("INST-%07d", i), Serial: fmt.Sprintf("SN%09d", i)}})
				}
				if err == nil {
					nc := wire.Component{Name: "notification-client", Channel: "stable", Installed: "1.1.0", State: "up-to-date"}
					switch i % 20 {
					case 1, 2:
						nc.Installed, nc.Staged, nc.State = "1.0.0", "1.1.0", "staged"
					case 3:
						nc.Installed, nc.Staged, nc.State = "1.0.0", "1.1.0", "awaiting-authorization"
					case 4:
						nc.Installed, nc.State, nc.Failed, nc.Reason = "1.0.0", "failed", "1.1.0", "health check failed"
					}
					seen := now.Add(-time.Duration(i%90) * time.Minute)
					err = st.SaveReport(ctx, id, fleet.ReportUpdate{Counter: 1, LastSeen: seen, Full: true, State: fleet.DeviceState{
						Counter: 1, LastSeen: seen, Digest: "d", AgentVersion: "1.2.0", PollInterval: time.Hour,
						Components: []wire.Component{{Name: "bcagent", Channel: "stable", Installed: "1.2.0", State: "up-to-date"}, nc},
						TUF:        wire.TUF{RootVersion: 1, TimestampVersion: 40}, TimestampSince: seen}})
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}
