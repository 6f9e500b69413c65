package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/pgtest"
)

// TestCommitBatch: one batch holding a good report, a replay, a report
// of an unknown device and another good one: each answered on its own,
// the refused ones change nothing, the good ones are stored.
func TestCommitBatch(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testCommitBatch(t, "sqlite:"+filepath.Join(t.TempDir(), "fleet.db")) })
	t.Run("postgres", func(t *testing.T) {
		if c := pgtest.Start(t); c != nil {
			testCommitBatch(t, c.NewDB(t))
		}
	})
}

func testCommitBatch(t *testing.T, dsn string) {
	ctx := context.Background()
	st, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	for i, id := range []string{"dev-a", "dev-b", "dev-c", "dev-d"} {
		if err := st.AddDevice(ctx, fleet.Device{ID: id, Site: "lab-1", PublicKey: bytes.Repeat([]byte{byte(i + 1)}, 32), Enrolled: now,
			Sealed: []byte("s"), EmailHash: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	full := func(counter uint64, v string) fleet.ReportUpdate {
		return fleet.ReportUpdate{Counter: counter, LastSeen: now, Full: true, State: fleet.DeviceState{Counter: counter,
			Components: []wire.Component{{Name: "nc", Installed: v, Channel: "stable", State: "up-to-date"}}}}
	}
	for _, id := range []string{"dev-a", "dev-d"} {
		if err := st.SaveReport(ctx, id, full(5, "1.0.0")); err != nil {
			t.Fatal(err)
		}
	}
	reqs := []*saveReq{
		{ctx: ctx, id: "dev-b", u: full(1, "1.1.0")},
		{ctx: ctx, id: "dev-a", u: full(3, "9.9.9")},
		{ctx: ctx, id: "dev-none", u: full(1, "1.0.0")},
		{ctx: ctx, id: "dev-a", u: full(6, "1.1.0")},
		// a component listed twice fails inside the statement sequence
		{ctx: ctx, id: "dev-b", u: fleet.ReportUpdate{Counter: 9, LastSeen: now, Full: true, State: fleet.DeviceState{
			Components: []wire.Component{{Name: "nc", Installed: "2.0.0"}, {Name: "nc", Installed: "2.0.0"}}}}},
		// heartbeats: new, replayed, unknown, and a second of one device
		{ctx: ctx, id: "dev-c", u: fleet.ReportUpdate{Counter: 8, LastSeen: now.Add(time.Hour)}},
		{ctx: ctx, id: "dev-d", u: fleet.ReportUpdate{Counter: 1, LastSeen: now.Add(time.Hour)}},
		{ctx: ctx, id: "dev-none", u: fleet.ReportUpdate{Counter: 1, LastSeen: now}},
		{ctx: ctx, id: "dev-c", u: fleet.ReportUpdate{Counter: 9, LastSeen: now.Add(2 * time.Hour)}},
	}
	for _, r := range reqs {
		r.done = make(chan error, 1)
	}
	st.commitBatch(reqs)
	got := make([]error, len(reqs))
	for i, r := range reqs {
		got[i] = <-r.done
	}
	if got[0] != nil || !errors.Is(got[1], fleet.ErrReplayed) || !errors.Is(got[2], fleet.ErrNotFound) || got[3] != nil || got[4] == nil ||
		got[5] != nil || !errors.Is(got[6], fleet.ErrReplayed) || !errors.Is(got[7], fleet.ErrNotFound) || got[8] != nil {
		t.Fatalf("answers: %v", got)
	}
	if d, err := st.Device(ctx, "dev-c"); err != nil || d.State.Counter != 9 || !d.State.LastSeen.Equal(now.Add(2*time.Hour)) {
		t.Fatalf("dev-c after two heartbeats: %+v %v", d.State, err)
	}
	if d, err := st.Device(ctx, "dev-d"); err != nil || d.State.Counter != 5 {
		t.Fatalf("dev-d after a replayed heartbeat: %+v %v", d.State, err)
	}
	for id, want := range map[string]string{"dev-a": "1.1.0", "dev-b": "1.1.0"} {
		d, err := st.Device(ctx, id)
		if err != nil || d.State.Components[0].Installed != want || len(d.State.Components) != 1 {
			t.Fatalf("%s: %+v %v", id, d, err)
		}
	}
	// A full report replaces the components: one dropped is gone, one
	// changed is changed (what the filters read).
	two := full(20, "2.0.0")
	two.State.Components = append(two.State.Components, wire.Component{Name: "other", Installed: "1.0.0", Channel: "stable", State: "up-to-date"})
	if err := st.SaveReport(ctx, "dev-a", two); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveReport(ctx, "dev-a", full(21, "2.1.0")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		filter fleet.DeviceFilter
		want   int
	}{{fleet.DeviceFilter{Component: "other"}, 0}, {fleet.DeviceFilter{Component: "nc", Version: "2.1.0"}, 1}, {fleet.DeviceFilter{Component: "nc", Version: "2.0.0"}, 0}} {
		if ds, err := st.Devices(ctx, f.filter); err != nil || len(ds) != f.want {
			t.Fatalf("Devices(%+v): %d %v, want %d", f.filter, len(ds), err, f.want)
		}
	}
}

// A store closed twice does not panic, and a report after Close is
// refused.
func TestCloseTwice(t *testing.T) {
	st, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	st.Close()
	if err := st.SaveReport(context.Background(), "dev-a", fleet.ReportUpdate{Counter: 1}); !errors.Is(err, errStoreClosed) {
		t.Fatalf("a report after Close: %v", err)
	}
}
