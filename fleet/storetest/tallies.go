package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

// testTallies: the rollouts page's counts from the store's indexes say
// what fleet.Rollout says from every device's state, for every release
// and channel, with silent and revoked devices, and the failure reasons
// are those of the reporting devices.
func testTallies(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	comps := []wire.Component{
		{Name: "nc", Channel: "stable", Installed: "1.2.0", State: "up-to-date"},
		{Name: "nc", Channel: "stable", Installed: "1.2.0", State: "up-to-date", ActiveFeatures: []string{"phi-file-transfer"}},
		{Name: "nc", Channel: "stable", Installed: "1.1.0", Failed: "1.2.0", State: "failed", Reason: "health check failed"},
		{Name: "nc", Channel: "stable", Installed: "1.1.0", Failed: "1.2.0", State: "failed", Reason: "health check failed"},
		{Name: "nc", Channel: "stable", Installed: "1.1.0", Failed: "1.2.0", State: "failed", Reason: "installer exited with code 1603"},
		{Name: "nc", Channel: "stable", Installed: "1.1.0", Failed: "1.2.0", State: "failed", Reason: "rolled back by hand", ByHand: true},
		{Name: "nc", Channel: "stable", Installed: "1.1.0", Staged: "1.2.0", State: "awaiting-authorization"},
		{Name: "nc", Channel: "stable", Installed: "1.1.0", Staged: "1.2.0", State: "staged"},
		{Name: "nc", Channel: "stable", Installed: "1.1.0", State: "up-to-date"},
		{Name: "nc", Channel: "beta", Installed: "1.3.0", State: "up-to-date"},
		{Name: "nc", Channel: "beta", Installed: "1.2.0", Staged: "1.3.0", State: "staged"},
	}
	now := t0.Add(2 * time.Hour)
	for i := range 3 * len(comps) {
		id := fmt.Sprintf("dev-%02d", i)
		if err := st.AddDevice(ctx, device(id, byte(i+1))); err != nil {
			t.Fatal(err)
		}
		u := fullUpdate(uint64(i+1), "x", "up-to-date")
		// Every third device fell silent (its last report three poll
		// intervals ago and more); the rest reported a minute ago.
		u.LastSeen = now.Add(-time.Minute)
		if i%3 == 1 {
			u.LastSeen = now.Add(-3 * time.Minute)
		}
		u.State.LastSeen = u.LastSeen
		u.State.Components = []wire.Component{comps[i%len(comps)], {Name: "bcagent", Channel: "stable", Installed: "1.4.0", State: "up-to-date"}}
		if err := st.SaveReport(ctx, id, u); err != nil {
			t.Fatal(err)
		}
	}
	// A revoked device counts nowhere; one that never reported has no
	// components.
	if err := st.RevokeDevice(ctx, "dev-00", t0); err != nil {
		t.Fatal(err)
	}
	if err := st.AddDevice(ctx, device("dev-new", 200)); err != nil {
		t.Fatal(err)
	}
	all, err := st.Devices(ctx, fleet.DeviceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := st.ComponentTallies(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if tl.Devices != len(all) {
		t.Errorf("tallies count %d devices, the store has %d", tl.Devices, len(all))
	}
	for _, ct := range tl.Components {
		if ct.Devices <= 0 || ct.Silent < 0 || ct.Silent > ct.Devices {
			t.Errorf("a tally of %d devices, %d silent: %+v", ct.Devices, ct.Silent, ct)
		}
	}
	for _, comp := range []string{"nc", "bcagent"} {
		for _, v := range []string{"1.1.0", "1.2.0", "1.3.0", "1.4.0"} {
			want := fleet.Rollout(all, comp, v, now)
			if got := fleet.RolloutOf(tl.Components, comp, fleet.AnyChannel, v); got != want {
				t.Errorf("%s %s from tallies:\n got %+v\nwant %+v (fleet.Rollout)", comp, v, got, want)
			}
			for _, ch := range []string{"stable", "beta"} {
				var on []fleet.Device
				for _, d := range all {
					if slices.ContainsFunc(d.State.Components, func(c wire.Component) bool { return c.Name == comp && c.Channel == ch }) {
						on = append(on, d)
					}
				}
				want := fleet.Rollout(on, comp, v, now)
				if got := fleet.RolloutOf(tl.Components, comp, ch, v); got != want {
					t.Errorf("%s %s on %s from tallies:\n got %+v\nwant %+v (fleet.Rollout)", comp, v, ch, got, want)
				}
			}
		}
	}
	// What the CLI and the API answer.
	if got, err := fleet.CountRollout(ctx, st, "nc", "1.2.0", now); err != nil || got != fleet.Rollout(all, "nc", "1.2.0", now) {
		t.Errorf("CountRollout nc 1.2.0: %+v, %v; want %+v", got, err, fleet.Rollout(all, "nc", "1.2.0", now))
	}
	// The suite's own numbers, so that the two cannot agree on nothing:
	// 27 devices on stable, one revoked, one in three silent.
	if r := fleet.RolloutOf(tl.Components, "nc", "stable", "1.2.0"); r.Targeted != 26 || r.Silent != 9 || r.Installed != 3 || r.Failed != 6 ||
		r.RolledBack != 2 || r.Awaiting != 2 || r.Staged != 2 || r.Pending != 2 {
		t.Errorf("nc 1.2.0 on stable: %+v", r)
	}
	// Reasons: of the reporting, unrevoked devices that failed (not by
	// hand).
	want := map[string]int{}
	for _, d := range all {
		if d.Revoked != nil || !d.Online(now) {
			continue
		}
		for _, c := range d.State.Components {
			if c.State == "failed" && !c.ByHand {
				want[c.Name+"|"+c.Channel+"|"+c.Failed+"|"+c.Reason]++
			}
		}
	}
	got := map[string]int{}
	for _, r := range tl.Reasons {
		got[r.Name+"|"+r.Channel+"|"+r.Failed+"|"+r.Reason] += r.Devices
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(want) != 2 {
		t.Errorf("failure reasons %v, want %v", got, want)
	}
	if len(tl.Pointers) != 0 {
		t.Errorf("no device reported a channel pointer, the tallies have %+v", tl.Pointers)
	}
	// A full report moves a device from one tally to another; the newest
	// report's channel pointer is the rollout's percent.
	u := fullUpdate(100, "x", "up-to-date")
	u.LastSeen, u.State.LastSeen = now.Add(-30*time.Minute), now.Add(-30*time.Minute)
	u.State.Components = []wire.Component{{Name: "nc", Channel: "stable", Installed: "1.1.0", Staged: "1.2.0", State: "staged", ChannelRelease: "1.2.0", RolloutPercent: 25}}
	if err := st.SaveReport(ctx, "dev-07", u); err != nil { // was staged already
		t.Fatal(err)
	}
	u.LastSeen, u.State.LastSeen = now, now
	u.State.Components = []wire.Component{{Name: "nc", Channel: "stable", Installed: "1.2.0", State: "up-to-date", ChannelRelease: "1.2.0", RolloutPercent: 50}}
	if err := st.SaveReport(ctx, "dev-02", u); err != nil { // was failed at 1.2.0
		t.Fatal(err)
	}
	tl, err = st.ComponentTallies(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if r := fleet.RolloutOf(tl.Components, "nc", "stable", "1.2.0"); r.Installed != 4 || r.Failed != 5 {
		t.Errorf("after dev-02's install of 1.2.0: %+v", r)
	}
	if p := tl.Pointers; len(p) != 1 || p[0].Name != "nc" || p[0].Channel != "stable" || p[0].Release != "1.2.0" || p[0].Percent != 50 || !p[0].Reported.Equal(now) {
		t.Errorf("the rollout's percent as reported: %+v, want dev-02's newest 50%%", tl.Pointers)
	}
}

// testRolloutHistory: points recorded once per time (a second record of
// the same time, by another server, changes nothing), read back per
// release in order, and pruned when older than what is kept.
func testRolloutHistory(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	point := func(version, channel string, installed int) fleet.RolloutPoint {
		return fleet.RolloutPoint{Channel: channel, RolloutStatus: fleet.RolloutStatus{Component: "nc", Version: version, Targeted: 10,
			Installed: installed, Staged: 1, Awaiting: 1, Failed: 1, RolledBack: 1, Silent: 1, Pending: 10 - installed - 6}}
	}
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	for i := range 4 {
		ps := []fleet.RolloutPoint{point("1.2.0", "stable", i), point("1.2.0", "beta", 4), point("1.1.0", "stable", 3)}
		if err := st.RecordRollouts(ctx, h(i), ps, h(-100)); err != nil {
			t.Fatal(err)
		}
	}
	// Another server records hour 3 again, with other numbers: the
	// first stays.
	if err := st.RecordRollouts(ctx, h(3), []fleet.RolloutPoint{point("1.2.0", "stable", 0)}, h(-100)); err != nil {
		t.Fatal(err)
	}
	got, err := st.RolloutHistory(ctx, "nc", "stable", "1.2.0", h(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("history since hour 1: %d points, want 3: %+v", len(got), got)
	}
	for i, p := range got {
		want := point("1.2.0", "stable", i+1)
		want.Time = h(i + 1)
		want.FailureRate = 2 / float64(i+3)
		if p != want {
			t.Errorf("point %d:\n got %+v\nwant %+v", i, p, want)
		}
	}
	// Recording at hour 5, keeping two hours: hours 0 to 2 go.
	if err := st.RecordRollouts(ctx, h(5), []fleet.RolloutPoint{point("1.2.0", "stable", 5)}, h(3)); err != nil {
		t.Fatal(err)
	}
	got, err = st.RolloutHistory(ctx, "nc", "stable", "1.2.0", h(-10))
	if err != nil || len(got) != 2 || !got[0].Time.Equal(h(3)) || !got[1].Time.Equal(h(5)) || got[1].Installed != 5 {
		t.Fatalf("after pruning: %+v %v", got, err)
	}
	if other, err := st.RolloutHistory(ctx, "nc", "beta", "1.2.0", h(-10)); err != nil || len(other) != 1 || other[0].Installed != 4 {
		t.Fatalf("beta after pruning: %+v %v", other, err)
	}
}

// testReportHistory: every full report (not a heartbeat, not a refused
// one) is kept, newest first, and only the last fleet.MaxReportHistory.
func testReportHistory(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	for _, id := range []string{"dev-1", "dev-2"} {
		if err := st.AddDevice(ctx, device(id, byte(len(id)+int(id[4])))); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := st.ReportHistory(ctx, "dev-1"); err != nil || len(h) != 0 {
		t.Fatalf("a new device's history: %+v %v", h, err)
	}
	if err := st.SaveReport(ctx, "dev-2", fullUpdate(1, "0.9.0", "up-to-date")); err != nil {
		t.Fatal(err)
	}
	n := fleet.MaxReportHistory + 5
	for i := 1; i <= n; i++ {
		if err := st.SaveReport(ctx, "dev-1", fullUpdate(uint64(2*i), fmt.Sprintf("1.0.%d", i), "up-to-date")); err != nil {
			t.Fatal(err)
		}
		// A heartbeat between: not a report of a change.
		if err := st.SaveReport(ctx, "dev-1", fleet.ReportUpdate{Counter: uint64(2*i + 1), LastSeen: t0.Add(time.Duration(2*i+1) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	// A refused report (a replay) leaves no record.
	if err := st.SaveReport(ctx, "dev-1", fullUpdate(3, "9.9.9", "up-to-date")); err == nil {
		t.Fatal("a replayed report was stored")
	}
	h, err := st.ReportHistory(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != fleet.MaxReportHistory {
		t.Fatalf("%d full reports kept, want %d", len(h), fleet.MaxReportHistory)
	}
	for j, r := range h {
		i := n - j
		if r.Counter != uint64(2*i) || !r.Time.Equal(t0.Add(time.Duration(2*i)*time.Minute)) || len(r.Components) != 2 ||
			r.Components[0].Installed != fmt.Sprintf("1.0.%d", i) || r.AgentVersion != "1.1.0" || r.AuditSeq != int64(2*i) || r.TUF.TimestampVersion != int64(2*i) {
			t.Fatalf("record %d: %+v, want report %d", j, r, 2*i)
		}
	}
	if h2, err := st.ReportHistory(ctx, "dev-2"); err != nil || len(h2) != 1 || h2[0].Components[0].Installed != "0.9.0" {
		t.Fatalf("another device's history: %+v %v", h2, err)
	}
}
