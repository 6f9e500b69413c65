package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
)

// testDevicePage: the dashboard's fleet page filters, counts and pages
// in the store, and online means what fleet.Device.Online means.
func testDevicePage(t *testing.T, st fleet.Store) {
	ctx := context.Background()
	// dev-00 … dev-11: even ones at lab-1, odd at lab-2; every third an
	// AQUIOS CL; dev-00 … dev-07 report (poll interval one minute).
	for i := range 12 {
		d := device(fmt.Sprintf("dev-%02d", i), byte(i+1))
		d.Site = []string{"lab-1", "lab-2"}[i%2]
		if i%3 == 0 {
			d.Instrument.Model = "AQUIOS CL"
		}
		if i == 5 {
			d.Instrument.Serial = "Sn_4711%"
		}
		if i == 8 {
			d.Instrument.Model = `CellMek SPS <2> & "B"` // characters JSON may escape
		}
		if i == 9 {
			d.Instrument.Serial = "SN<9>&"
		}
		if err := st.AddDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		if i < 8 {
			state := "up-to-date"
			if i == 2 {
				state = "failed"
			}
			if err := st.SaveReport(ctx, d.ID, fullUpdate(uint64(i+1), "1.1.0", state)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.RevokeDevice(ctx, "dev-07", t0); err != nil {
		t.Fatal(err)
	}
	// Revoked and silent (it never reported): offline once, not twice.
	if err := st.RevokeDevice(ctx, "dev-11", t0); err != nil {
		t.Fatal(err)
	}
	// fullUpdate(n) is seen at t0+n minutes with a one-minute poll
	// interval: online until three minutes later.
	now := t0.Add(8*time.Minute + 30*time.Second) // dev-05 (6 min), dev-06 (7) and dev-07 (8) are young enough; dev-07 is revoked
	ids := func(p *fleet.DevicePage) string {
		var s []string
		for _, d := range p.Devices {
			s = append(s, d.ID)
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		name  string
		q     fleet.DeviceQuery
		want  string
		total int
		more  bool
	}{
		{"a first page", fleet.DeviceQuery{Limit: 5}, "dev-00 dev-01 dev-02 dev-03 dev-04", 12, true},
		{"the next page", fleet.DeviceQuery{Limit: 5, After: "dev-04"}, "dev-05 dev-06 dev-07 dev-08 dev-09", 12, true},
		{"the last page", fleet.DeviceQuery{Limit: 5, After: "dev-09"}, "dev-10 dev-11", 12, false},
		{"back a page", fleet.DeviceQuery{Limit: 5, Before: "dev-10"}, "dev-05 dev-06 dev-07 dev-08 dev-09", 12, true},
		{"back to the first", fleet.DeviceQuery{Limit: 5, Before: "dev-05"}, "dev-00 dev-01 dev-02 dev-03 dev-04", 12, false},
		{"a site", fleet.DeviceQuery{Limit: 50, DeviceFilter: fleet.DeviceFilter{Site: "lab-2"}}, "dev-01 dev-03 dev-05 dev-07 dev-09 dev-11", 6, false},
		{"a model", fleet.DeviceQuery{Limit: 50, Model: "AQUIOS CL"}, "dev-00 dev-03 dev-06 dev-09", 4, false},
		{"a model is exact", fleet.DeviceQuery{Limit: 50, Model: "aquios cl"}, "", 0, false},
		{"a model JSON escapes", fleet.DeviceQuery{Limit: 50, Model: `CellMek SPS <2> & "B"`}, "dev-08", 1, false},
		{"a search JSON escapes", fleet.DeviceQuery{Limit: 50, Search: `sn<9>&`}, "dev-09", 1, false},
		{"a failed component", fleet.DeviceQuery{Limit: 50, DeviceFilter: fleet.DeviceFilter{Component: "notification-client", State: "failed"}}, "dev-02", 1, false},
		{"a version and a site", fleet.DeviceQuery{Limit: 50, DeviceFilter: fleet.DeviceFilter{Site: "lab-1", Component: "notification-client", Version: "1.1.0"}}, "dev-00 dev-02 dev-04 dev-06", 4, false},
		{"an instrument ID, any case", fleet.DeviceQuery{Limit: 50, Search: "inst-dev-1"}, "dev-10 dev-11", 2, false},
		{"a device ID", fleet.DeviceQuery{Limit: 50, Search: "DEV-03"}, "dev-03", 1, false},
		{"a serial with LIKE's wildcards, taken literally", fleet.DeviceQuery{Limit: 50, Search: "sn_4711%"}, "dev-05", 1, false},
		{"a wildcard matches nothing else", fleet.DeviceQuery{Limit: 50, Search: "%"}, "", 0, false},
		{"online", fleet.DeviceQuery{Limit: 50, Presence: fleet.PresenceOnline, Now: now}, "dev-05 dev-06", 2, false},
		{"offline", fleet.DeviceQuery{Limit: 50, Presence: fleet.PresenceOffline, Now: now}, "dev-00 dev-01 dev-02 dev-03 dev-04 dev-07 dev-08 dev-09 dev-10 dev-11", 10, false},
		{"offline at lab-1, paged", fleet.DeviceQuery{Limit: 2, After: "dev-00", Presence: fleet.PresenceOffline, Now: now, DeviceFilter: fleet.DeviceFilter{Site: "lab-1"}}, "dev-02 dev-04", 5, true},
		// With other filters the count takes another path than the page.
		{"online at lab-2", fleet.DeviceQuery{Limit: 50, Presence: fleet.PresenceOnline, Now: now, DeviceFilter: fleet.DeviceFilter{Site: "lab-2"}}, "dev-05", 1, false},
		{"online, a model", fleet.DeviceQuery{Limit: 50, Presence: fleet.PresenceOnline, Now: now, Model: "AQUIOS CL"}, "dev-06", 1, false},
		{"offline, a model (revoked and never seen included)", fleet.DeviceQuery{Limit: 50, Presence: fleet.PresenceOffline, Now: now, Model: "AQUIOS CL"}, "dev-00 dev-03 dev-09", 3, false},
		{"offline at lab-2, revoked included", fleet.DeviceQuery{Limit: 50, Presence: fleet.PresenceOffline, Now: now, DeviceFilter: fleet.DeviceFilter{Site: "lab-2"}}, "dev-01 dev-03 dev-07 dev-09 dev-11", 5, false},
		{"online, a failed component", fleet.DeviceQuery{Limit: 50, Presence: fleet.PresenceOnline, Now: now, DeviceFilter: fleet.DeviceFilter{Component: "notification-client", State: "failed"}}, "", 0, false},
	} {
		p, err := st.DevicePage(ctx, tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := ids(p); got != tc.want || p.Total != tc.total || p.More != tc.more {
			t.Errorf("%s: %q, total %d, more %v; want %q, %d, %v", tc.name, got, p.Total, p.More, tc.want, tc.total, tc.more)
		}
	}
	// Online agrees with fleet.Device.Online for every device.
	all, err := st.DevicePage(ctx, fleet.DeviceQuery{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	on, err := st.DevicePage(ctx, fleet.DeviceQuery{Limit: 50, Presence: fleet.PresenceOnline, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range all.Devices {
		if d.Revoked == nil && d.Online(now) {
			want = append(want, d.ID)
		}
	}
	if ids(on) != strings.Join(want, " ") {
		t.Errorf("online %q, fleet.Device.Online says %q", ids(on), want)
	}
	// A page carries the devices whole, like Device.
	one, err := st.Device(ctx, "dev-02")
	if err != nil {
		t.Fatal(err)
	}
	if got := all.Devices[2]; got.ID != one.ID || !got.State.LastSeen.Equal(one.State.LastSeen) || got.State.Counter != one.State.Counter ||
		len(got.State.Components) != len(one.State.Components) || got.Instrument != one.Instrument {
		t.Errorf("a page's dev-02 %+v differs from Device's %+v", got, *one)
	}
	for _, q := range []fleet.DeviceQuery{{Limit: 0}, {Limit: fleet.MaxPageSize + 1}, {Limit: 5, After: "a", Before: "b"}} {
		if _, err := st.DevicePage(ctx, q); err == nil {
			t.Errorf("DevicePage(%+v): no error", q)
		}
	}
}
