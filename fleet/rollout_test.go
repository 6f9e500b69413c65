package fleet

import (
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

func TestRollout(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	dev := func(seen time.Duration, c wire.Component) Device {
		c.Name = "nc"
		return Device{State: DeviceState{LastSeen: now.Add(-seen), PollInterval: time.Hour, Components: []wire.Component{c}}}
	}
	revoked := dev(0, wire.Component{Installed: "1.2.0", State: "up-to-date"})
	revoked.Revoked = &now
	devices := []Device{
		dev(time.Minute, wire.Component{Installed: "1.2.0", State: "up-to-date"}),
		dev(time.Minute, wire.Component{Installed: "1.2.0", State: "up-to-date"}),
		dev(time.Minute, wire.Component{Installed: "1.1.0", Failed: "1.2.0", State: "failed", Reason: "health check failed"}),
		dev(time.Minute, wire.Component{Installed: "1.1.0", Failed: "1.2.0", State: "failed", Reason: "rolled back by hand from 1.2.0", ByHand: true}),
		dev(time.Minute, wire.Component{Installed: "1.1.0", Staged: "1.2.0", State: "awaiting-authorization"}),
		dev(time.Minute, wire.Component{Installed: "1.1.0", Staged: "1.2.0", State: "staged"}),
		dev(time.Minute, wire.Component{Installed: "1.1.0", State: "up-to-date"}),
		dev(4*time.Hour, wire.Component{Installed: "1.2.0", State: "up-to-date"}),
		revoked,
		{State: DeviceState{LastSeen: now, Components: []wire.Component{{Name: "other", Installed: "1.2.0"}}}},
	}
	got := Rollout(devices, "nc", "1.2.0", now)
	want := RolloutStatus{Component: "nc", Version: "1.2.0", Targeted: 8, Installed: 2, Failed: 1, RolledBack: 1, Awaiting: 1, Staged: 1, Pending: 1, Silent: 1, FailureRate: 0.5}
	if got != want {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if r := Rollout(nil, "nc", "1.2.0", now); r.FailureRate != 0 || r.Targeted != 0 {
		t.Fatalf("no devices: %+v", r)
	}
}
