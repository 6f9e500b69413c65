package fleet

import (
	"time"
)

// DeviceQuery selects one page of devices for the dashboard's fleet page,
// so that a fleet of 100,000 devices is never read whole: the store
// filters, counts and pages (by device ID, after or before a given one).
type DeviceQuery struct {
	DeviceFilter // Site, Component (with Version, State); EmailHash is ignored
	// Model is the instrument model, exactly.
	Model string
	// Search is the start of a device ID, instrument ID or serial number,
	// any case.
	Search string
	// Presence is "", PresenceOnline or PresenceOffline as of Now: online
	// is Device.Online (the last report younger than three poll
	// intervals) and not revoked.
	Presence string
	Now      time.Time
	// After and Before page by device ID: the devices after (or before)
	// that ID; at most one of them.
	After, Before string
	// Limit is the page size, 1 to MaxPageSize.
	Limit int
}

// Presence filters of a DeviceQuery.
const (
	PresenceOnline  = "online"
	PresenceOffline = "offline"
)

// MaxPageSize bounds DeviceQuery.Limit.
const MaxPageSize = 500

// DevicePage is one page of devices by ID, and how many match in all.
type DevicePage struct {
	Devices []Device
	// Total is how many devices match the query's filters, on every
	// page.
	Total int
	// More says there are matching devices beyond this page in the
	// direction it was read (after the last for After or a first page,
	// before the first for Before).
	More bool
}
