// Package storetest is the one test suite every fleet.Store passes
// (SQLite and PostgreSQL, fleet/sqlstore): tokens, devices, reports with
// replay protection, filters, and the hash-chained access log, with the
// concurrent cases that matter when several servers share one store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

// Run runs the suite; open returns a new, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) fleet.Store) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, fleet.Store)
	}{
		{"Tokens", testTokens},
		{"LastTokenUseOnce", testLastTokenUse},
		{"Devices", testDevices},
		{"Enroll", testEnroll},
		{"Reports", testReports},
		{"ConcurrentReports", testConcurrentReports},
		{"ManyReportsAtOnce", testManyReports},
		{"Filters", testFilters},
		{"DevicePage", testDevicePage},
		{"Tallies", testTallies},
		{"RolloutHistory", testRolloutHistory},
		{"ReportHistory", testReportHistory},
		{"AccessLog", testAccessLog},
		{"ConcurrentAccessLog", testConcurrentAccess},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var t0 = time.Date(2026, 12, 1, 9, 30, 0, 123456789, time.UTC)

func token(id, site string, uses int) fleet.Token {
	return fleet.Token{ID: id, Site: site, Hash: []byte("hash-" + id), Created: t0, Expires: t0.Add(time.Hour), Uses: uses}
}

func testTokens(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	a, b := token("tok-a", "lab-1", 2), token("tok-b", "lab-2", 1)
	b.Created = t0.Add(time.Minute)
	for _, tk := range []fleet.Token{a, b} {
		if err := st.CreateToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateToken(ctx, a); !errors.Is(err, fleet.ErrExists) {
		t.Fatalf("a second token tok-a: %v, want ErrExists", err)
	}
	got, err := st.UseToken(ctx, a.Hash, t0)
	if err != nil || got.ID != "tok-a" || got.Site != "lab-1" || got.Uses != 1 || !got.Expires.Equal(a.Expires) {
		t.Fatalf("UseToken: %+v %v", got, err)
	}
	if _, err := st.UseToken(ctx, a.Hash, t0.Add(time.Hour)); !errors.Is(err, fleet.ErrBadToken) {
		t.Fatalf("an expired token: %v", err)
	}
	if _, err := st.UseToken(ctx, []byte("unknown"), t0); !errors.Is(err, fleet.ErrBadToken) {
		t.Fatalf("an unknown token: %v", err)
	}
	if _, err := st.UseToken(ctx, a.Hash, t0); err != nil {
		t.Fatalf("the last use: %v", err)
	}
	if _, err := st.UseToken(ctx, a.Hash, t0); !errors.Is(err, fleet.ErrBadToken) {
		t.Fatalf("a used-up token: %v", err)
	}
	if err := st.RevokeToken(ctx, "tok-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UseToken(ctx, b.Hash, t0); !errors.Is(err, fleet.ErrBadToken) {
		t.Fatalf("a revoked token: %v", err)
	}
	if err := st.RevokeToken(ctx, "tok-none"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("revoking an unknown token: %v", err)
	}
	ts, err := st.Tokens(ctx)
	if err != nil || len(ts) != 2 || ts[0].ID != "tok-b" || !ts[0].Revoked || ts[1].Uses != 0 || !ts[1].Created.Equal(t0) {
		t.Fatalf("Tokens: %+v %v", ts, err)
	}
}

func testLastTokenUse(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	if err := st.CreateToken(ctx, token("tok-1", "lab-1", 3)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, bad := 0, 0
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.UseToken(ctx, []byte("hash-tok-1"), t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, fleet.ErrBadToken):
				bad++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 3 || bad != 9 {
		t.Fatalf("12 concurrent uses of a 3-use token: %d took it, %d refused", ok, bad)
	}
}

func device(id string, key byte) fleet.Device {
	return fleet.Device{ID: id, Site: "lab-1", PublicKey: bytes.Repeat([]byte{key}, 32), Enrolled: t0,
		Sealed: []byte("sealed-" + id), EmailHash: []byte("eh-" + id),
		Instrument: wire.Instrument{Model: "Navios EX", ID: "INST-" + id, Serial: "SN-" + id},
		State:      fleet.DeviceState{AgentVersion: "1.0.0"}}
}

func testDevices(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	d := device("dev-1", 1)
	if err := st.AddDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := st.AddDevice(ctx, device("dev-2", 1)); !errors.Is(err, fleet.ErrExists) {
		t.Fatalf("a second device with dev-1's key: %v, want ErrExists", err)
	}
	if err := st.AddDevice(ctx, device("dev-1", 2)); !errors.Is(err, fleet.ErrExists) {
		t.Fatalf("a second dev-1: %v, want ErrExists", err)
	}
	got, err := st.Device(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != d.ID || got.Site != d.Site || !bytes.Equal(got.PublicKey, d.PublicKey) || !got.Enrolled.Equal(t0) ||
		!bytes.Equal(got.Sealed, d.Sealed) || !bytes.Equal(got.EmailHash, d.EmailHash) || got.Instrument != d.Instrument ||
		got.Revoked != nil || got.State.AgentVersion != "1.0.0" {
		t.Fatalf("Device: %+v, stored %+v", got, d)
	}
	if _, err := st.Device(ctx, "dev-none"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("an unknown device: %v", err)
	}
	// Key rotation: only from the key the device has; not to another
	// device's key; not for a revoked device.
	if err := st.AddDevice(ctx, device("dev-9", 9)); err != nil {
		t.Fatal(err)
	}
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	if err := st.RotateKey(ctx, "dev-1", key(7), key(3)); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("rotating from a key the device does not have: %v", err)
	}
	if err := st.RotateKey(ctx, "dev-1", key(1), key(9)); !errors.Is(err, fleet.ErrExists) {
		t.Fatalf("rotating to another device's key: %v", err)
	}
	if err := st.RotateKey(ctx, "dev-1", key(1), key(3)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Device(ctx, "dev-1"); !bytes.Equal(got.PublicKey, key(3)) {
		t.Fatalf("after rotation the key is %x", got.PublicKey)
	}
	if err := st.RotateKey(ctx, "dev-1", key(1), key(4)); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("rotating from the retired key: %v", err)
	}
	if err := st.RevokeDevice(ctx, "dev-1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.RotateKey(ctx, "dev-1", key(3), key(5)); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("rotating a revoked device's key: %v", err)
	}
	if a, err := st.DeviceAuth(ctx, "dev-1"); err != nil || a.Revoked == nil || !a.Revoked.Equal(t0.Add(time.Minute)) {
		t.Fatalf("DeviceAuth of a revoked device: %+v %v", a, err)
	}
	if err := st.RevokeDevice(ctx, "dev-1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, _ = st.Device(ctx, "dev-1")
	if got.Revoked == nil || !got.Revoked.Equal(t0.Add(time.Minute)) {
		t.Fatalf("revoked at %v, want the first revocation's time", got.Revoked)
	}
	if err := st.RevokeDevice(ctx, "dev-none", t0); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("revoking an unknown device: %v", err)
	}
}

// testEnroll: one enrollment is one transaction; a refused one uses up
// no token and stores nothing.
func testEnroll(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	for _, tk := range []fleet.Token{token("tok-1", "lab-1", 1), token("tok-2", "lab-2", 5), token("tok-3", "lab-1", 5)} {
		if err := st.CreateToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	d := device("dev-1", 1)
	d.Site = "" // the token's site is the device's
	tok, err := st.Enroll(ctx, []byte("hash-tok-1"), t0, d, nil)
	if err != nil || tok.ID != "tok-1" || tok.Uses != 0 {
		t.Fatalf("Enroll: %+v %v", tok, err)
	}
	got, err := st.Device(ctx, "dev-1")
	if err != nil || got.Site != "lab-1" {
		t.Fatalf("enrolled device: %+v %v", got, err)
	}
	if _, err := st.Enroll(ctx, []byte("hash-tok-1"), t0, device("dev-2", 2), nil); !errors.Is(err, fleet.ErrBadToken) {
		t.Fatalf("a used-up token: %v, want ErrBadToken", err)
	}
	if _, err := st.Enroll(ctx, []byte("hash-tok-3"), t0.Add(2*time.Hour), device("dev-2", 2), nil); !errors.Is(err, fleet.ErrBadToken) {
		t.Fatalf("an expired token: %v, want ErrBadToken", err)
	}
	uses := func(id string) int {
		t.Helper()
		ts, err := st.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range ts {
			if tk.ID == id {
				return tk.Uses
			}
		}
		t.Fatalf("token %s is gone", id)
		return 0
	}
	// Refusals after the token is taken roll the use back.
	refused := []struct {
		name string
		d    fleet.Device
		want error
	}{
		{"a key already enrolled", device("dev-2", 1), fleet.ErrExists},
		{"an ID already taken", device("dev-1", 2), fleet.ErrExists},
		{"replacing a device of another site", func() fleet.Device { d := device("dev-2", 2); d.Replaces = "dev-1"; return d }(), fleet.ErrNotFound},
		{"replacing no device", func() fleet.Device { d := device("dev-2", 2); d.Replaces = "dev-none"; return d }(), fleet.ErrNotFound},
	}
	dev1Key := device("dev-1", 1).PublicKey
	for _, r := range refused {
		if _, err := st.Enroll(ctx, []byte("hash-tok-2"), t0, r.d, dev1Key); !errors.Is(err, r.want) {
			t.Fatalf("%s: %v, want %v", r.name, err, r.want)
		}
		if n := uses("tok-2"); n != 5 {
			t.Fatalf("%s: the token has %d uses left after a refused enrollment, want 5", r.name, n)
		}
		if r.d.ID != "dev-1" {
			if _, err := st.Device(ctx, r.d.ID); !errors.Is(err, fleet.ErrNotFound) {
				t.Fatalf("%s: the refused device was stored (%v)", r.name, err)
			}
		}
	}
	if got, _ := st.Device(ctx, "dev-1"); got.Revoked != nil {
		t.Fatal("a refused enrollment revoked the device it named")
	}
	// A re-enrollment in the same site retires the replaced device.
	d3 := device("dev-3", 3)
	d3.Replaces = "dev-1"
	if _, err := st.Enroll(ctx, []byte("hash-tok-3"), t0.Add(time.Minute), d3, bytes.Repeat([]byte{7}, 32)); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("replacing a device whose key is not the one verified: %v", err)
	}
	if _, err := st.Enroll(ctx, []byte("hash-tok-3"), t0.Add(time.Minute), d3, dev1Key); err != nil {
		t.Fatal(err)
	}
	old, _ := st.Device(ctx, "dev-1")
	now, _ := st.Device(ctx, "dev-3")
	if old.Revoked == nil || !old.Revoked.Equal(t0.Add(time.Minute)) || now == nil || now.Replaces != "dev-1" || now.Revoked != nil {
		t.Fatalf("after re-enrollment: old %+v, new %+v", old, now)
	}
}

func fullUpdate(counter uint64, installed, state string) fleet.ReportUpdate {
	seen := t0.Add(time.Duration(counter) * time.Minute)
	return fleet.ReportUpdate{Counter: counter, LastSeen: seen, Full: true, State: fleet.DeviceState{
		Counter: counter, LastSeen: seen, Digest: "d-" + installed, AgentVersion: "1.1.0", PollInterval: time.Minute,
		Components: []wire.Component{{Name: "notification-client", Installed: installed, Channel: "stable", State: state},
			{Name: "bcagent", Installed: "1.1.0", Channel: "stable", State: "up-to-date"}},
		TUF:   wire.TUF{RootVersion: 2, TimestampVersion: int64(counter)},
		Audit: wire.LogHead{Seq: int64(counter), Hash: "a"}, Consent: wire.LogHead{Seq: 1, Hash: "c"},
		TimestampSince: seen, Flags: []string{"audit log forked"}}}
}

func testReports(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	if err := st.AddDevice(ctx, device("dev-1", 1)); err != nil {
		t.Fatal(err)
	}
	u := fullUpdate(5, "1.0.0", "up-to-date")
	if err := st.SaveReport(ctx, "dev-1", u); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Device(ctx, "dev-1")
	if got.State.Counter != 5 || !got.State.LastSeen.Equal(u.LastSeen) || got.State.Digest != "d-1.0.0" ||
		len(got.State.Components) != 2 || got.State.Components[0].Installed != "1.0.0" || got.State.TUF.TimestampVersion != 5 ||
		got.State.PollInterval != time.Minute || len(got.State.Flags) != 1 || !got.State.TimestampSince.Equal(u.LastSeen) {
		t.Fatalf("after a full report: %+v", got.State)
	}
	auth, err := st.DeviceAuth(ctx, "dev-1")
	if err != nil || auth.ID != "dev-1" || !bytes.Equal(auth.PublicKey, got.PublicKey) || auth.Revoked != nil ||
		auth.State.Counter != 5 || auth.State.Digest != "d-1.0.0" {
		t.Fatalf("DeviceAuth: %+v %v", auth, err)
	}
	if _, err := st.DeviceAuth(ctx, "dev-none"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("DeviceAuth of an unknown device: %v", err)
	}
	for _, c := range []uint64{5, 4} {
		if err := st.SaveReport(ctx, "dev-1", fullUpdate(c, "9.9.9", "up-to-date")); !errors.Is(err, fleet.ErrReplayed) {
			t.Fatalf("counter %d after 5: %v, want ErrReplayed", c, err)
		}
	}
	hb := fleet.ReportUpdate{Counter: 6, LastSeen: t0.Add(time.Hour)}
	if err := st.SaveReport(ctx, "dev-1", hb); err != nil {
		t.Fatal(err)
	}
	got, _ = st.Device(ctx, "dev-1")
	if got.State.Counter != 6 || !got.State.LastSeen.Equal(hb.LastSeen) || got.State.Components[0].Installed != "1.0.0" || got.State.Digest != "d-1.0.0" {
		t.Fatalf("a heartbeat changed more than counter and time: %+v", got.State)
	}
	if err := st.SaveReport(ctx, "dev-1", fleet.ReportUpdate{Counter: 6, LastSeen: t0}); !errors.Is(err, fleet.ErrReplayed) {
		t.Fatalf("a replayed heartbeat: %v", err)
	}
	if err := st.SaveReport(ctx, "dev-none", hb); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("a report of an unknown device: %v", err)
	}
	bad := fullUpdate(7, "1.2.0", "up-to-date")
	bad.State.Components = append(bad.State.Components, bad.State.Components[0])
	if err := st.SaveReport(ctx, "dev-1", bad); err == nil {
		t.Fatal("a report listing a component twice was stored")
	}
	got, _ = st.Device(ctx, "dev-1")
	if got.State.Counter != 6 || got.State.Components[0].Installed != "1.0.0" {
		t.Fatalf("a refused report left a trace: %+v", got.State)
	}
	if ds, _ := st.Devices(ctx, fleet.DeviceFilter{Component: "notification-client", Version: "1.0.0"}); len(ds) != 1 {
		t.Fatalf("a refused report changed the component rows: %d devices at 1.0.0", len(ds))
	}
}

// testManyReports: reports of many devices at once (a store may commit
// them together), mixed with replays and unknown devices: each gets its
// own answer, and a refused one spoils none of the others.
func testManyReports(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	const n = 40
	for i := range n {
		if err := st.AddDevice(ctx, device(fmt.Sprintf("dev-%02d", i), byte(i+1))); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveReport(ctx, fmt.Sprintf("dev-%02d", i), fullUpdate(5, "1.0.0", "up-to-date")); err != nil {
			t.Fatal(err)
		}
	}
	// wave sends, for every device at once, a new report, a replayed one
	// and one of an unknown device, and checks each answer.
	wave := func(what string, fresh, replayed fleet.ReportUpdate) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 3*n)
		for i := range n {
			for k, r := range []struct {
				id string
				u  fleet.ReportUpdate
			}{{fmt.Sprintf("dev-%02d", i), fresh}, {fmt.Sprintf("dev-%02d", i), replayed}, {fmt.Sprintf("dev-none-%02d", i), fresh}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[3*i+k] = st.SaveReport(ctx, r.id, r.u)
				}()
			}
		}
		wg.Wait()
		for i := range n {
			if errs[3*i] != nil || !errors.Is(errs[3*i+1], fleet.ErrReplayed) || !errors.Is(errs[3*i+2], fleet.ErrNotFound) {
				t.Fatalf("%s of device %d: new %v, replayed %v, unknown %v", what, i, errs[3*i], errs[3*i+1], errs[3*i+2])
			}
		}
	}
	wave("full reports", fullUpdate(6, "1.1.0", "up-to-date"), fullUpdate(4, "9.9.9", "up-to-date"))
	for i := range n {
		d, err := st.Device(ctx, fmt.Sprintf("dev-%02d", i))
		if err != nil || d.State.Counter != 6 || d.State.Components[0].Installed != "1.1.0" {
			t.Fatalf("device %d after the reports: %+v %v", i, d, err)
		}
	}
	ds, err := st.Devices(ctx, fleet.DeviceFilter{Component: "notification-client", Version: "1.1.0"})
	if err != nil || len(ds) != n {
		t.Fatalf("devices at 1.1.0: %d %v", len(ds), err)
	}
	// The same with heartbeats (a store may store them in one statement).
	seen := t0.Add(48 * time.Hour)
	wave("heartbeats", fleet.ReportUpdate{Counter: 7, LastSeen: seen}, fleet.ReportUpdate{Counter: 2, LastSeen: seen})
	for i := range n {
		d, err := st.Device(ctx, fmt.Sprintf("dev-%02d", i))
		if err != nil || d.State.Counter != 7 || !d.State.LastSeen.Equal(seen) || d.State.Components[0].Installed != "1.1.0" {
			t.Fatalf("device %d after the heartbeats: %+v %v", i, d.State, err)
		}
	}
}

func testConcurrentReports(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	if err := st.AddDevice(ctx, device("dev-1", 1)); err != nil {
		t.Fatal(err)
	}
	// The same counter from several servers at once: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.SaveReport(ctx, "dev-1", fullUpdate(1, fmt.Sprintf("1.0.%d", i), "up-to-date"))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else if !errors.Is(err, fleet.ErrReplayed) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("8 reports with counter 1: %d accepted", ok)
	}
	ds, err := st.Devices(ctx, fleet.DeviceFilter{Component: "notification-client"})
	if err != nil || len(ds) != 1 {
		t.Fatalf("Devices: %d %v", len(ds), err)
	}
}

func testFilters(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	for i, site := range []string{"lab-1", "lab-1", "lab-2", "lab-2"} {
		d := device(fmt.Sprintf("dev-%d", i), byte(i+1))
		d.Site = site
		if err := st.AddDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	st.SaveReport(ctx, "dev-0", fullUpdate(1, "1.0.0", "up-to-date"))
	st.SaveReport(ctx, "dev-1", fullUpdate(1, "1.1.0", "awaiting-authorization"))
	st.SaveReport(ctx, "dev-2", fullUpdate(1, "1.1.0", "up-to-date"))
	// dev-3 never reported.
	for _, tc := range []struct {
		f    fleet.DeviceFilter
		want string
	}{
		{fleet.DeviceFilter{}, "dev-0 dev-1 dev-2 dev-3"},
		{fleet.DeviceFilter{Site: "lab-2"}, "dev-2 dev-3"},
		{fleet.DeviceFilter{Component: "notification-client"}, "dev-0 dev-1 dev-2"},
		{fleet.DeviceFilter{Component: "notification-client", Version: "1.1.0"}, "dev-1 dev-2"},
		{fleet.DeviceFilter{Component: "notification-client", State: "awaiting-authorization"}, "dev-1"},
		{fleet.DeviceFilter{Component: "notification-client", Version: "1.1.0", Site: "lab-1"}, "dev-1"},
		{fleet.DeviceFilter{Component: "bcagent", Version: "1.0.0"}, ""},
		{fleet.DeviceFilter{EmailHash: []byte("eh-dev-3")}, "dev-3"},
	} {
		ds, err := st.Devices(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for i, d := range ds {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(d.ID)
		}
		if b.String() != tc.want {
			t.Errorf("Devices(%+v) = %q, want %q", tc.f, b.String(), tc.want)
		}
	}
	// A full report replaces the component rows.
	st.SaveReport(ctx, "dev-0", fullUpdate(2, "1.1.0", "up-to-date"))
	if ds, _ := st.Devices(ctx, fleet.DeviceFilter{Component: "notification-client", Version: "1.0.0"}); len(ds) != 0 {
		t.Fatalf("dev-0's old version is still found: %d", len(ds))
	}
}

func testAccessLog(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	for i, a := range []string{"device.show", "device.revoke", "token.create"} {
		e, err := st.AppendAccess(ctx, fleet.AccessEntry{Time: t0.Add(time.Duration(i) * time.Second), Actor: "operator:root", Action: a, Target: "dev-1"})
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != int64(i+1) || e.Hash != fleet.ChainHash(*e) || (i == 0) != (e.Prev == "") {
			t.Fatalf("entry %d: %+v", i+1, e)
		}
	}
	log, err := st.AccessLog(ctx)
	if err != nil || len(log) != 3 || log[1].Prev != log[0].Hash || log[2].Action != "token.create" || !log[0].Time.Equal(t0) {
		t.Fatalf("AccessLog: %+v %v", log, err)
	}
	if n, err := fleet.VerifyAccessLog(ctx, st); err != nil || n != 3 {
		t.Fatalf("VerifyAccessLog: %d %v", n, err)
	}
}

func testConcurrentAccess(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := st.AppendAccess(ctx, fleet.AccessEntry{Time: t0, Actor: fmt.Sprintf("user-%d", i), Action: "device.show"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n, err := fleet.VerifyAccessLog(ctx, st); err != nil || n != 16 {
		t.Fatalf("16 concurrent appends: %d entries, %v", n, err)
	}
}
