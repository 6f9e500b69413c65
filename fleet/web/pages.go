package web

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/repo"
)

// storeFailed is the page for a store that did not answer.
func (d *Dashboard) storeFailed(w http.ResponseWriter, s *session, err error) {
	d.o.Log.Error("dashboard store", "err", err)
	d.fail(w, s, http.StatusInternalServerError, "The fleet store did not answer; try again in a moment.")
}

// Rollout states in the CLI's words (bcfleet rollout status), in the
// order the chart stacks them.
var rolloutSeries = []struct{ Key, Label string }{
	{"installed", "installed"},
	{"staged", "staged"},
	{"awaiting", "awaiting authorization"},
	{"failed", "failed (rolled back)"},
	{"rolled_back", "rolled back by hand"},
	{"silent", "silent (offline)"},
	{"pending", "not there yet"},
}

// maxReleases is how many of a channel's releases the rollouts page
// shows, newest first.
const maxReleases = 6

type reasonCount struct {
	Reason string
	Count  int
}

type releaseRow struct {
	fleet.RolloutStatus
	OverLimit bool
	Reasons   []reasonCount
}

type rolloutGroup struct {
	Component, Channel string
	Releases           []releaseRow
	// Chart is the chart's data (static/app.js draws it).
	Chart string
	// History is the chart over time of the newest release (Releases[0])
	// ("" without recorded points), and Daily its numbers: the last point
	// of each day, and now.
	History string
	Daily   []fleet.RolloutPoint
	// Pointer is the channel pointer as the newest report saw it (nil:
	// no device reported one).
	Pointer *fleet.PointerTally
}

type rolloutsData struct {
	Groups   []rolloutGroup
	Limit    float64
	Devices  int
	Now      time.Time
	ChartLib string
}

// chartData is what static/app.js reads from a canvas's data-chart.
type chartData struct {
	// Kind is "" for devices by release (bars), "history" for one
	// release's devices over time (stacked areas; Labels are RFC 3339
	// times).
	Kind   string        `json:"kind,omitempty"`
	Title  string        `json:"title"`
	Labels []string      `json:"labels"`
	Series []chartSeries `json:"series"`
}

type chartSeries struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	Data  []int  `json:"data"`
}

// rollouts: per component and channel, each release's counts (stacked),
// failure rate against the guard's limit and top failure reasons.
func (d *Dashboard) rollouts(w http.ResponseWriter, r *http.Request, s *session) {
	data, err := d.rolloutSnapshot(r.Context())
	if err != nil {
		d.storeFailed(w, s, err)
		return
	}
	d.render(w, http.StatusOK, "rollouts", view{Title: "Rollouts", Who: s, CSRF: s.CSRF, Nav: "rollouts", Data: data})
}

// rolloutSnapshot is the rollouts page's numbers. The store counts them
// from its indexes (Store.ComponentTallies, tens of milliseconds for
// 100,000 devices), and they are read at most once per
// Options.RolloutsMaxAge for everyone: numbers younger than that are
// shown as they are; older ones are shown too (the page says as of when)
// while one read in the background replaces them. The first read starts
// with the dashboard; requests before it ends wait for it (one read,
// however many wait). A negative RolloutsMaxAge reads them for every
// request (the benchmark measures that read).
func (d *Dashboard) rolloutSnapshot(ctx context.Context) (*rolloutsData, error) {
	if d.o.RolloutsMaxAge < 0 {
		return d.computeRollouts(ctx)
	}
	d.rmu.Lock()
	snap, wait := d.rsnap, d.rflight
	if snap != nil && d.now().Sub(snap.Now) < d.o.RolloutsMaxAge {
		d.rmu.Unlock()
		return snap, nil
	}
	if wait == nil {
		done := make(chan struct{})
		d.rflight, wait = done, done
		go d.refreshRollouts(done)
	}
	d.rmu.Unlock()
	if snap != nil {
		return snap, nil
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if d.rsnap == nil {
		return nil, d.rerr
	}
	return d.rsnap, nil
}

// refreshRollouts reads the rollouts' numbers and closes done.
func (d *Dashboard) refreshRollouts(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	snap, err := d.computeRollouts(ctx)
	cancel()
	if err != nil {
		d.o.Log.Error("dashboard rollouts", "err", err)
	}
	d.rmu.Lock()
	if err == nil {
		d.rsnap = snap
	}
	d.rerr = err
	d.rflight = nil
	close(done)
	d.rmu.Unlock()
}

// recordHistory records each release's counts at once and then every
// Options.HistoryEvery, until ctx ends, at the start of each interval
// (so that servers sharing a store record the same points once).
func (d *Dashboard) recordHistory(ctx context.Context) {
	t := time.NewTicker(d.o.HistoryEvery)
	defer t.Stop()
	for {
		if err := d.recordOnce(ctx); err != nil && ctx.Err() == nil {
			d.o.Log.Error("dashboard rollout history", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Dashboard) recordOnce(ctx context.Context) error {
	data, err := d.countRollouts(ctx)
	if err != nil {
		return err
	}
	at := data.Now.Truncate(d.o.HistoryEvery)
	var ps []fleet.RolloutPoint
	for _, g := range data.Groups {
		for _, r := range g.Releases {
			ps = append(ps, fleet.RolloutPoint{Channel: g.Channel, RolloutStatus: r.RolloutStatus})
		}
	}
	return d.o.Store.RecordRollouts(ctx, at, ps, at.Add(-HistoryKeep))
}

// computeRollouts is the rollouts page: the counts, and the newest
// release's history of each component and channel.
func (d *Dashboard) computeRollouts(ctx context.Context) (*rolloutsData, error) {
	data, err := d.countRollouts(ctx)
	if err != nil {
		return nil, err
	}
	for i := range data.Groups {
		g := &data.Groups[i]
		if len(g.Releases) == 0 {
			continue
		}
		now := fleet.RolloutPoint{Time: data.Now, Channel: g.Channel, RolloutStatus: g.Releases[0].RolloutStatus}
		ps, err := d.o.Store.RolloutHistory(ctx, g.Component, g.Channel, now.Version, data.Now.Add(-HistoryShown))
		if err != nil {
			return nil, err
		}
		if len(ps) == 0 {
			continue
		}
		ps = append(ps, now)
		chart := chartData{Kind: "history", Title: g.Component + " " + now.Version + " on " + channelName(g.Channel)}
		counts := make([][]int, len(rolloutSeries))
		for j, p := range ps {
			chart.Labels = append(chart.Labels, p.Time.UTC().Format(time.RFC3339))
			for k, n := range []int{p.Installed, p.Staged, p.Awaiting, p.Failed, p.RolledBack, p.Silent, p.Pending} {
				counts[k] = append(counts[k], n)
			}
			if j == len(ps)-1 || ps[j+1].Time.UTC().Format(time.DateOnly) != p.Time.UTC().Format(time.DateOnly) {
				g.Daily = append(g.Daily, p)
			}
		}
		for k, sr := range rolloutSeries {
			chart.Series = append(chart.Series, chartSeries{Key: sr.Key, Label: sr.Label, Data: counts[k]})
		}
		b, _ := json.Marshal(chart)
		g.History = string(b)
	}
	return data, nil
}

// countRollouts counts every release's devices from the store's tallies.
func (d *Dashboard) countRollouts(ctx context.Context) (*rolloutsData, error) {
	now := d.now()
	t, err := d.o.Store.ComponentTallies(ctx, now)
	if err != nil {
		return nil, err
	}
	type key struct{ component, channel string }
	versions := map[key]map[string]bool{}
	for _, c := range t.Components {
		k := key{c.Name, c.Channel}
		if versions[k] == nil {
			versions[k] = map[string]bool{}
		}
		for _, v := range []string{c.Installed, c.Staged, c.Failed} {
			if v != "" {
				versions[k][v] = true
			}
		}
	}
	keys := slices.SortedFunc(maps.Keys(versions), func(a, b key) int {
		if c := strings.Compare(a.component, b.component); c != 0 {
			return c
		}
		return strings.Compare(a.channel, b.channel)
	})
	data := &rolloutsData{Limit: d.o.MaxFailureRate, Devices: t.Devices, Now: now, ChartLib: ChartJSVersion}
	for _, k := range keys {
		vs := slices.SortedFunc(maps.Keys(versions[k]), func(a, b string) int { return repo.CompareVersions(b, a) })
		if len(vs) > maxReleases {
			vs = vs[:maxReleases]
		}
		g := rolloutGroup{Component: k.component, Channel: k.channel}
		for i, p := range t.Pointers {
			if p.Name == k.component && p.Channel == k.channel {
				g.Pointer = &t.Pointers[i]
			}
		}
		chart := chartData{Title: k.component + " on " + channelName(k.channel)}
		counts := make([][]int, len(rolloutSeries))
		for _, v := range vs {
			st := fleet.RolloutOf(t.Components, k.component, k.channel, v)
			row := releaseRow{RolloutStatus: st, OverLimit: st.FailureRate > d.o.MaxFailureRate, Reasons: reasons(t.Reasons, k.component, k.channel, v)}
			g.Releases = append(g.Releases, row)
			chart.Labels = append(chart.Labels, v)
			for i, n := range []int{st.Installed, st.Staged, st.Awaiting, st.Failed, st.RolledBack, st.Silent, st.Pending} {
				counts[i] = append(counts[i], n)
			}
		}
		for i, sr := range rolloutSeries {
			chart.Series = append(chart.Series, chartSeries{Key: sr.Key, Label: sr.Label, Data: counts[i]})
		}
		b, _ := json.Marshal(chart)
		g.Chart = string(b)
		data.Groups = append(data.Groups, g)
	}
	return data, nil
}

func channelName(c string) string {
	if c == "" {
		return "(no channel)"
	}
	return c
}

// reasons are the failure reasons of the reporting devices that failed
// version of component on channel (not by hand), most frequent first, at
// most five.
func reasons(ts []fleet.ReasonTally, component, channel, version string) []reasonCount {
	n := map[string]int{}
	for _, t := range ts {
		if t.Name == component && t.Channel == channel && t.Failed == version {
			why := t.Reason
			if why == "" {
				why = "(no reason given)"
			}
			n[why] += t.Devices
		}
	}
	out := make([]reasonCount, 0, len(n))
	for why, c := range n {
		out = append(out, reasonCount{why, c})
	}
	slices.SortFunc(out, func(a, b reasonCount) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

// pageSize is the fleet page's number of devices.
const pageSize = 50

type fleetRow struct {
	fleet.DeviceSummary
	Model string
}

type fleetData struct {
	Q                 fleet.DeviceQuery
	Rows              []fleetRow
	Total             int
	Prev, Next        string // query strings, "" for none
	States, Presences []string
}

// Component states as the agent reports them (DESIGN.md).
var componentStates = []string{"up-to-date", "update-available", "staged", "awaiting-authorization", "failed"}

// fleet: devices with search and filters, paged in the store.
func (d *Dashboard) fleet(w http.ResponseWriter, r *http.Request, s *session) {
	p := r.URL.Query()
	q := fleet.DeviceQuery{DeviceFilter: fleet.DeviceFilter{Site: strings.TrimSpace(p.Get("site")), Component: strings.TrimSpace(p.Get("component")),
		Version: strings.TrimSpace(p.Get("version")), State: p.Get("state")},
		Model: strings.TrimSpace(p.Get("model")), Search: strings.TrimSpace(p.Get("q")), Presence: p.Get("online"),
		After: p.Get("after"), Before: p.Get("before"), Limit: pageSize, Now: d.now()}
	for _, v := range []string{q.Site, q.Component, q.Version, q.State, q.Model, q.Search, q.After, q.Before} {
		if len(v) > 256 {
			d.fail(w, s, http.StatusBadRequest, "A filter is longer than 256 characters.")
			return
		}
	}
	if q.Presence != "" && q.Presence != fleet.PresenceOnline && q.Presence != fleet.PresenceOffline {
		d.fail(w, s, http.StatusBadRequest, "online="+q.Presence+": want online or offline (or nothing for both).")
		return
	}
	if q.State != "" && !slices.Contains(componentStates, q.State) {
		d.fail(w, s, http.StatusBadRequest, "state="+q.State+": want one of "+strings.Join(componentStates, ", ")+".")
		return
	}
	if (q.Version != "" || q.State != "") && q.Component == "" {
		d.fail(w, s, http.StatusBadRequest, "A version or state filter needs a component (the version or state of which component?).")
		return
	}
	if q.After != "" && q.Before != "" {
		q.Before = ""
	}
	page, err := d.o.Store.DevicePage(r.Context(), q)
	if err != nil {
		d.storeFailed(w, s, err)
		return
	}
	data := fleetData{Q: q, Total: page.Total, States: componentStates, Presences: []string{fleet.PresenceOnline, fleet.PresenceOffline}}
	for i := range page.Devices {
		data.Rows = append(data.Rows, fleetRow{DeviceSummary: page.Devices[i].Summary(q.Now), Model: page.Devices[i].Instrument.Model})
	}
	// Previous and next: the filters, and the first or last ID shown.
	link := func(dir, id string) string {
		v := url.Values{}
		for _, k := range []string{"q", "site", "model", "component", "version", "state", "online"} {
			if x := p.Get(k); x != "" {
				v.Set(k, x)
			}
		}
		v.Set(dir, id)
		return v.Encode()
	}
	if n := len(page.Devices); n > 0 {
		hasPrev := q.After != "" || (q.Before != "" && page.More)
		hasNext := page.More && q.Before == "" || q.Before != ""
		if hasPrev {
			data.Prev = link("before", page.Devices[0].ID)
		}
		if hasNext {
			data.Next = link("after", page.Devices[n-1].ID)
		}
	}
	d.render(w, http.StatusOK, "fleet", view{Title: "Fleet", Who: s, CSRF: s.CSRF, Nav: "fleet", Data: data})
}

type featureRow struct {
	Component, Feature, State string
}

type deviceData struct {
	fleet.DeviceSummary
	Enrolled time.Time
	Replaces string
	Counter  uint64
	Poll     time.Duration
	TUF      wire.TUF
	Audit    wire.LogHead
	Consent  wire.LogHead
	Features []featureRow
	Enrollee *wire.Enrollee
	Seq      int64 // the access log entry of this view (support)
	// History is the device's last full reports, newest first, each
	// with what it changed.
	History []historyRow
}

// historyRow is one full report of the device page's report history.
type historyRow struct {
	fleet.ReportRecord
	Changes []string
}

func deviceView(dev *fleet.Device, now time.Time) deviceData {
	dd := deviceData{DeviceSummary: dev.Summary(now), Enrolled: dev.Enrolled, Replaces: dev.Replaces, Counter: dev.State.Counter,
		Poll: dev.State.PollInterval, TUF: dev.State.TUF, Audit: dev.State.Audit, Consent: dev.State.Consent}
	if dd.Poll <= 0 {
		dd.Poll = fleet.DefaultPollInterval
	}
	for _, c := range dev.State.Components {
		for _, f := range c.ActiveFeatures {
			dd.Features = append(dd.Features, featureRow{c.Name, f, "active"})
		}
		for _, f := range c.PendingFeatures {
			dd.Features = append(dd.Features, featureRow{c.Name, f, "pending authorization"})
		}
		for _, f := range c.DeclinedFeatures {
			dd.Features = append(dd.Features, featureRow{c.Name, f, "declined"})
		}
	}
	return dd
}

// device: one device, no personal data (every role).
func (d *Dashboard) device(w http.ResponseWriter, r *http.Request, s *session) {
	dev, err := d.o.Store.Device(r.Context(), r.PathValue("id"))
	if errors.Is(err, fleet.ErrNotFound) {
		d.fail(w, s, http.StatusNotFound, "There is no device "+strconv.Quote(r.PathValue("id"))+". Search for it on the fleet page.")
		return
	}
	if err != nil {
		d.storeFailed(w, s, err)
		return
	}
	dd, err := d.deviceWithHistory(r.Context(), dev)
	if err != nil {
		d.storeFailed(w, s, err)
		return
	}
	d.render(w, http.StatusOK, "device", view{Title: "Device " + dev.ID, Who: s, CSRF: s.CSRF, Nav: "fleet", Data: dd})
}

// deviceWithHistory is the device page's view of dev with its report
// history.
func (d *Dashboard) deviceWithHistory(ctx context.Context, dev *fleet.Device) (deviceData, error) {
	dd := deviceView(dev, d.now())
	var err error
	dd.History, err = d.history(ctx, dev.ID)
	return dd, err
}

// enrollee: the device with its enrollee, for support; the read is in
// the access log before anything is shown (fleet.ShowDevice).
func (d *Dashboard) enrollee(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	det, err := fleet.ShowDevice(r.Context(), d.o.Store, d.o.KEK, s.actor(), id, d.now())
	if errors.Is(err, fleet.ErrUsage) {
		d.fail(w, s, http.StatusNotFound, "There is no device "+strconv.Quote(id)+". Search for it on the fleet page.")
		return
	}
	if err != nil {
		d.storeFailed(w, s, err)
		return
	}
	dev, err := d.o.Store.Device(r.Context(), id)
	if err != nil {
		d.storeFailed(w, s, err)
		return
	}
	dd, err := d.deviceWithHistory(r.Context(), dev)
	if err != nil {
		d.storeFailed(w, s, err)
		return
	}
	dd.Enrollee = &det.Enrollee
	d.render(w, http.StatusOK, "enrollee", view{Title: "Enrollee of " + id, Who: s, CSRF: s.CSRF, Nav: "fleet", Data: dd})
}

// revoke: an admin revokes a device (in the access log first).
func (d *Dashboard) revoke(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if r.PostFormValue("confirm") != id {
		d.fail(w, s, http.StatusBadRequest, "To revoke, type the device ID "+strconv.Quote(id)+" into the confirmation field.")
		return
	}
	err := fleet.RevokeDevice(r.Context(), d.o.Store, s.actor(), id, d.now())
	if errors.Is(err, fleet.ErrUsage) {
		d.fail(w, s, http.StatusNotFound, "There is no device "+strconv.Quote(id)+".")
		return
	}
	if err != nil {
		d.storeFailed(w, s, err)
		return
	}
	http.Redirect(w, r, "/devices/"+url.PathEscape(id), http.StatusSeeOther)
}

// accessPage is the access log page's number of entries.
const accessPage = 100

type accessData struct {
	Entries    []fleet.AccessEntry
	Total      int
	Verified   bool
	Problem    string
	Page, Last int
}

// access: the access log, newest first, and whether its chain verifies.
func (d *Dashboard) access(w http.ResponseWriter, r *http.Request, s *session) {
	log, err := d.o.Store.AccessLog(r.Context())
	if err != nil {
		d.storeFailed(w, s, err)
		return
	}
	data := accessData{Total: len(log), Verified: true}
	if _, err := fleet.VerifyAccessLog(r.Context(), d.o.Store); err != nil {
		data.Verified, data.Problem = false, err.Error()
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	data.Last = max(0, (len(log)-1)/accessPage)
	data.Page = min(max(page, 0), data.Last)
	slices.Reverse(log)
	lo := data.Page * accessPage
	data.Entries = log[lo:min(lo+accessPage, len(log))]
	d.render(w, http.StatusOK, "access", view{Title: "Access log", Who: s, CSRF: s.CSRF, Nav: "access", Data: data})
}

// history is the device's report history, each report with what it
// changed against the one before it.
func (d *Dashboard) history(ctx context.Context, id string) ([]historyRow, error) {
	recs, err := d.o.Store.ReportHistory(ctx, id)
	if err != nil {
		return nil, err
	}
	rows := make([]historyRow, len(recs))
	for i := range recs {
		var older *fleet.ReportRecord
		if i+1 < len(recs) {
			older = &recs[i+1]
		}
		rows[i] = historyRow{ReportRecord: recs[i], Changes: reportChanges(&recs[i], older)}
	}
	return rows, nil
}

// reportChanges says what a full report changed against the one before
// it (nil: the oldest kept, described whole), in the CLI's words.
func reportChanges(r, older *fleet.ReportRecord) []string {
	var out []string
	if older == nil {
		out = append(out, "the oldest report kept")
		older = &fleet.ReportRecord{}
	}
	if r.AgentVersion != older.AgentVersion && r.AgentVersion != "" {
		out = append(out, "agent "+arrow(older.AgentVersion, r.AgentVersion))
	}
	was := map[string]wire.Component{}
	for _, c := range older.Components {
		was[c.Name] = c
	}
	for _, c := range r.Components {
		o, ok := was[c.Name]
		delete(was, c.Name)
		var parts []string
		if !ok || o.Installed != c.Installed {
			parts = append(parts, "installed "+arrow(o.Installed, c.Installed))
		}
		if (!ok || o.Staged != c.Staged) && c.Staged != "" {
			parts = append(parts, "staged "+c.Staged)
		}
		if !ok || o.State != c.State {
			st := c.State
			if c.Failed != "" {
				st += " (" + c.Failed
				if c.ByHand {
					st += " rolled back by hand)"
				} else {
					st += " failed, rolled back)"
				}
			}
			if c.Reason != "" {
				st += ": " + c.Reason
			}
			parts = append(parts, st)
		}
		for _, f := range c.ActiveFeatures {
			if !slices.Contains(o.ActiveFeatures, f) {
				parts = append(parts, f+" active")
			}
		}
		for _, f := range o.ActiveFeatures {
			if !slices.Contains(c.ActiveFeatures, f) {
				parts = append(parts, f+" no longer active")
			}
		}
		for _, f := range c.PendingFeatures {
			if !slices.Contains(o.PendingFeatures, f) {
				parts = append(parts, f+" pending authorization")
			}
		}
		if len(parts) > 0 {
			out = append(out, c.Name+": "+strings.Join(parts, ", "))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(was)) {
		out = append(out, name+": no longer reported")
	}
	if r.TUF.RootVersion != older.TUF.RootVersion && older.TUF.RootVersion != 0 {
		out = append(out, "TUF root "+arrow(strconv.FormatInt(older.TUF.RootVersion, 10), strconv.FormatInt(r.TUF.RootVersion, 10)))
	}
	for _, f := range r.Flags {
		if !slices.Contains(older.Flags, f) {
			out = append(out, "finding: "+f)
		}
	}
	if len(out) == 0 {
		out = append(out, "the trusted metadata or a log advanced")
	}
	return out
}

func arrow(from, to string) string {
	if from == "" {
		from = "none"
	}
	if to == "" {
		to = "none"
	}
	if from == "none" {
		return to
	}
	return from + " → " + to
}
