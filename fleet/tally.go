package fleet

import (
	"context"
	"time"
)

// Rollout counts from the store's indexes: the dashboard's rollouts page
// needs every release's numbers across 100,000 devices, which reading
// every device's state (Store.Devices and Rollout) takes seconds to give.
// The store counts the devices that share one combination of a
// component's channel, versions and state instead (TallyStore), and
// RolloutOf classifies the combinations exactly as Rollout classifies
// devices.

// TallyStore is a Store that counts components for the rollouts page.
type TallyStore interface {
	// ComponentTallies counts, as of now, the unrevoked devices by
	// component, channel, installed, staged and failed version, state and
	// ByHand, with how many of them are silent (not Device.Online), and
	// the failure reasons of the reporting devices whose install of a
	// version failed (not by hand).
	ComponentTallies(ctx context.Context, now time.Time) (*Tallies, error)
}

// Tallies is what ComponentTallies counts.
type Tallies struct {
	// Devices is every enrolled device, revoked ones included.
	Devices    int
	Components []ComponentTally
	Reasons    []ReasonTally
	// Pointers are, per component and channel, what the newest full
	// report that carried one said the channel pointer names (none from
	// agents before wire.Component.RolloutPercent).
	Pointers []PointerTally
}

// PointerTally is a channel pointer as the newest report of a component
// on a channel saw it: the release it names and the share of devices it
// is rolled out to, as reported by devices (the service does not read
// the repository).
type PointerTally struct {
	Name, Channel, Release string
	Percent                int
	Reported               time.Time
}

// ComponentTally is how many unrevoked devices report a component in one
// combination of channel, versions and state.
type ComponentTally struct {
	Name, Channel, Installed, Staged, Failed, State string
	ByHand                                          bool
	Devices                                         int
	// Silent is how many of Devices are not online.
	Silent int
}

// ReasonTally is how many online, unrevoked devices failed version
// Failed of component Name on Channel (not by hand) for Reason.
type ReasonTally struct {
	Name, Channel, Failed, Reason string
	Devices                       int
}

// RolloutOf is Rollout from tallies: the release version of component on
// channel (every channel when channel is AnyChannel).
func RolloutOf(ts []ComponentTally, component, channel, version string) RolloutStatus {
	r := RolloutStatus{Component: component, Version: version}
	for _, t := range ts {
		if t.Name != component || (channel != AnyChannel && t.Channel != channel) {
			continue
		}
		r.Targeted += t.Devices
		r.Silent += t.Silent
		n := t.Devices - t.Silent
		switch {
		case t.Installed == version && t.State != "failed":
			r.Installed += n
		case t.State == "failed" && t.Failed == version && t.ByHand:
			r.RolledBack += n
		case t.State == "failed" && t.Failed == version:
			r.Failed += n
		case t.Staged == version && t.State == "awaiting-authorization":
			r.Awaiting += n
		case t.Staged == version:
			r.Staged += n
		default:
			r.Pending += n
		}
	}
	if tried := r.Installed + r.Failed + r.RolledBack; tried > 0 {
		r.FailureRate = float64(r.Failed+r.RolledBack) / float64(tried)
	}
	return r
}

// CountRollout is Rollout of version of component across every channel,
// counted by the store (ComponentTallies) instead of from every device's
// state: what `bcfleet rollout status` and /api/rollouts answer.
func CountRollout(ctx context.Context, st TallyStore, component, version string, now time.Time) (RolloutStatus, error) {
	t, err := st.ComponentTallies(ctx, now)
	if err != nil {
		return RolloutStatus{}, err
	}
	return RolloutOf(t.Components, component, AnyChannel, version), nil
}

// AnyChannel makes RolloutOf count a component on every channel, as
// Rollout does.
const AnyChannel = "\x00any"

// RolloutPoint is a release's counts on a channel at one time: a point
// of the rollouts page's chart over time.
type RolloutPoint struct {
	Time    time.Time
	Channel string
	RolloutStatus
}

// HistoryStore keeps each release's counts over time.
type HistoryStore interface {
	// RecordRollouts stores the points, all at time at (a point of a
	// release already recorded at at is left as it is, so every server
	// of one store may record), and deletes the points older than
	// keepSince.
	RecordRollouts(ctx context.Context, at time.Time, ps []RolloutPoint, keepSince time.Time) error
	// RolloutHistory returns the points of version of component on
	// channel since since, oldest first.
	RolloutHistory(ctx context.Context, component, channel, version string, since time.Time) ([]RolloutPoint, error)
}
