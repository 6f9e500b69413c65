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
)

// TestCommitBatch: one batch holding a good report, a replay, a report
// of an unknown device and another good one: each answered on its own,
// the refused ones change nothing, the good ones are stored.
func TestCommitBatch(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	for i, id := range []string{"dev-a", "dev-b"} {
		if err := st.AddDevice(ctx, fleet.Device{ID: id, Site: "lab-1", PublicKey: bytes.Repeat([]byte{byte(i + 1)}, 32), Enrolled: now,
			Sealed: []byte("s"), EmailHash: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	full := func(counter uint64, v string) fleet.ReportUpdate {
		return fleet.ReportUpdate{Counter: counter, LastSeen: now, Full: true, State: fleet.DeviceState{Counter: counter,
			Components: []wire.Component{{Name: "nc", Installed: v, Channel: "stable", State: "up-to-date"}}}}
	}
	if err := st.SaveReport(ctx, "dev-a", full(5, "1.0.0")); err != nil {
		t.Fatal(err)
	}
	reqs := []*saveReq{
		{ctx: ctx, id: "dev-b", u: full(1, "1.1.0")},
		{ctx: ctx, id: "dev-a", u: full(3, "9.9.9")},
		{ctx: ctx, id: "dev-none", u: full(1, "1.0.0")},
		{ctx: ctx, id: "dev-a", u: full(6, "1.1.0")},
		// a component listed twice fails inside the statement sequence
		{ctx: ctx, id: "dev-b", u: fleet.ReportUpdate{Counter: 9, LastSeen: now, Full: true, State: fleet.DeviceState{
			Components: []wire.Component{{Name: "nc", Installed: "2.0.0"}, {Name: "nc", Installed: "2.0.0"}}}}},
	}
	for _, r := range reqs {
		r.done = make(chan error, 1)
	}
	st.commitBatch(reqs)
	got := make([]error, len(reqs))
	for i, r := range reqs {
		got[i] = <-r.done
	}
	if got[0] != nil || !errors.Is(got[1], fleet.ErrReplayed) || !errors.Is(got[2], fleet.ErrNotFound) || got[3] != nil || got[4] == nil {
		t.Fatalf("answers: %v", got)
	}
	for id, want := range map[string]string{"dev-a": "1.1.0", "dev-b": "1.1.0"} {
		d, err := st.Device(ctx, id)
		if err != nil || d.State.Components[0].Installed != want || len(d.State.Components) != 1 {
			t.Fatalf("%s: %+v %v", id, d, err)
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
