package sqlstore

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

// TestMigrateDashboard: a store written by schema 4 (the instrument and
// the poll interval only in JSON, components with installed and state
// only) opens at the newest schema with the dashboard's columns filled
// from that JSON: the model and search filters, online, and the rollout
// tallies find the old devices; and migration 5 goes down again.
func TestMigrateDashboard(t *testing.T) { eachMigrationStore(t, testMigrateDashboard) }

func testMigrateDashboard(t *testing.T, m migrationStore) {
	ctx := context.Background()
	db := m.migrateTo(t, ctx, 4, false)
	defer db.Close()
	ph := m.ph
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	devs := []struct {
		id    string
		inst  wire.Instrument
		seen  time.Time
		comp  wire.Component
		state fleet.DeviceState
	}{
		{id: "dev-a", inst: wire.Instrument{Model: "Navios EX", ID: "INST-4711", Serial: "SN-A"}, seen: now.Add(-time.Minute),
			comp: wire.Component{Name: "nc", Channel: "stable", Installed: "1.0.0", Failed: "1.1.0", State: "failed", Reason: "health check failed"}},
		{id: "dev-b", inst: wire.Instrument{Model: "AQUIOS CL", ID: "INST-4712", Serial: "SN-B"}, seen: now.Add(-2 * time.Hour),
			comp: wire.Component{Name: "nc", Channel: "stable", Installed: "1.0.0", Staged: "1.1.0", State: "awaiting-authorization"}},
		{id: "dev-c", inst: wire.Instrument{Model: "AQUIOS CL", ID: "INST-4713", Serial: "SN-C"}, seen: now.Add(-time.Minute),
			comp: wire.Component{Name: "nc", Channel: "stable", Installed: "1.0.0", Failed: "1.1.0", State: "failed", ByHand: true}},
	}
	for i, d := range devs {
		// dev-b polls every ten minutes: two hours without a report is
		// silent; the others poll hourly.
		st := fleet.DeviceState{PollInterval: time.Hour, Components: []wire.Component{d.comp}, Digest: "d"}
		if d.id == "dev-b" {
			st.PollInterval = 10 * time.Minute
		}
		state, _ := json.Marshal(st)
		inst, _ := json.Marshal(d.inst)
		if _, err := db.ExecContext(ctx, ph(`INSERT INTO devices (id, site, public_key, enrolled, sealed, email_hash, instrument, state)
			VALUES (?, 'lab', ?, 1, ?, ?, ?, ?)`), d.id, []byte("key-"+d.id), []byte("sealed"), []byte("hash"), string(inst), string(state)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, ph(`INSERT INTO device_seen (device_id, counter, last_seen, digest) VALUES (?, ?, ?, 'd')`),
			d.id, int64(i+1), nanos(d.seen)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, ph(`INSERT INTO components (device_id, name, installed, state) VALUES (?, ?, ?, ?)`),
			d.id, d.comp.Name, d.comp.Installed, d.comp.State); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	st, err := Open(ctx, m.dsn)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := st.SchemaVersion(ctx); err != nil || v < 5 {
		t.Fatalf("schema version %d %v", v, err)
	}
	for _, tc := range []struct {
		name string
		q    fleet.DeviceQuery
		want int
	}{
		{"model", fleet.DeviceQuery{Model: "AQUIOS CL"}, 2},
		{"search by instrument ID, any case", fleet.DeviceQuery{Search: "inst-4711"}, 1},
		{"search by serial", fleet.DeviceQuery{Search: "sn-"}, 3},
		{"search by device ID", fleet.DeviceQuery{Search: "DEV-C"}, 1},
		{"online (dev-b's own poll interval)", fleet.DeviceQuery{Presence: fleet.PresenceOnline, Now: now}, 2},
		{"offline", fleet.DeviceQuery{Presence: fleet.PresenceOffline, Now: now}, 1},
	} {
		tc.q.Limit = 10
		pg, err := st.DevicePage(ctx, tc.q)
		if err != nil || pg.Total != tc.want {
			t.Errorf("%s after migrating: %+v %v, want %d", tc.name, pg, err, tc.want)
		}
	}
	tl, err := st.ComponentTallies(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	want := fleet.RolloutStatus{Component: "nc", Version: "1.1.0", Targeted: 3, Failed: 1, RolledBack: 1, Silent: 1, FailureRate: 1}
	if got := fleet.RolloutOf(tl.Components, "nc", "stable", "1.1.0"); got != want {
		t.Errorf("rollout after migrating: %+v, want %+v", got, want)
	}
	if len(tl.Reasons) != 1 || tl.Reasons[0].Reason != "health check failed" || tl.Reasons[0].Devices != 1 {
		t.Errorf("failure reasons after migrating: %+v", tl.Reasons)
	}
	st.Close()

	// Down to 4 (the rows stay) and up again.
	db2 := m.migrateTo(t, ctx, 4, true)
	var n int
	if err := db2.QueryRowContext(ctx, `SELECT COUNT(*) FROM components`).Scan(&n); err != nil || n != 3 {
		t.Errorf("components after going down: %d %v", n, err)
	}
	db2.Close()
	st2, err := Open(ctx, m.dsn) // up again, as a server starting does
	if err != nil {
		t.Fatal(err)
	}
	st2.Close()
}
