package sqlstore_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/sqlstore"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/pgtest"
)

// BenchmarkReports: signed reports (one full report per device, then
// heartbeats) from many devices over keep-alive HTTP against the real
// fleet.Server on each store, in process. It reports reports/s and the
// p50/p99 latency; every report must be accepted. Devices are seeded in
// the store directly (their keys kept for signing). Run with
//
//	go test -run '^$' -bench Reports -benchtime 20000x ./fleet/sqlstore/
//
// and BENCH_DEVICES to change the fleet's size (default 10,000).
func BenchmarkReports(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		st, err := sqlstore.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "fleet.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchReports(b, st)
	})
	b.Run("postgres", func(b *testing.B) {
		c := pgtest.Start(b)
		if c == nil {
			return
		}
		st, err := sqlstore.Open(context.Background(), c.NewDB(b))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchReports(b, st)
	})
}

type benchDevice struct {
	id      string
	key     ed25519.PrivateKey
	counter uint64
	mu      sync.Mutex
}

func benchReports(b *testing.B, st fleet.Store) {
	ctx := context.Background()
	n := 10000
	if v := benchEnvInt("BENCH_DEVICES"); v > 0 {
		n = v
	}
	devs := make([]*benchDevice, n)
	for i := range devs {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		d := &benchDevice{id: fmt.Sprintf("dev-%08d", i), key: priv}
		devs[i] = d
		if err := st.AddDevice(ctx, fleet.Device{ID: d.id, Site: "lab-1", PublicKey: pub, Enrolled: time.Now(), Sealed: []byte("x"), EmailHash: []byte("h")}); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer((&fleet.Server{Store: st}).Handler())
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: tr}
	send := func(d *benchDevice, full bool) (time.Duration, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.counter++
		r := wire.Report{DeviceID: d.id, Counter: d.counter, Time: time.Now().UTC(), Digest: "d-1.0.0"}
		if full {
			r.AgentVersion, r.PollInterval = "1.0.0", "1m"
			r.Components = []wire.Component{{Name: "notification-client", Installed: "1.0.0", Channel: "stable", State: "up-to-date"}}
			r.TUF, r.Audit, r.Consent = &wire.TUF{RootVersion: 1, TimestampVersion: 5}, &wire.LogHead{Seq: 3, Hash: "a"}, &wire.LogHead{Seq: 1, Hash: "c"}
		} else {
			r.Heartbeat = true
		}
		body, _ := json.Marshal(r)
		req, _ := http.NewRequest("POST", srv.URL+wire.ReportPath, bytes.NewReader(body))
		req.Header.Set(wire.DeviceHeader, d.id)
		req.Header.Set(wire.SignatureHeader, wire.SignReport(d.key, body))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("report of %s: %s", d.id, resp.Status)
		}
		return time.Since(start), nil
	}
	for _, d := range devs { // each device's first, full report
		if _, err := send(d, true); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	lat := make([]time.Duration, b.N)
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				// One report in ten is full (a change), the rest heartbeats.
				l, err := send(devs[int(i)%len(devs)], i%10 == 0)
				if err != nil {
					failed.Store(err)
					return
				}
				lat[i] = l
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/el.Seconds(), "reports/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func benchEnvInt(name string) int {
	var v int
	fmt.Sscan(getenv(name), &v)
	return v
}

var getenv = os.Getenv
