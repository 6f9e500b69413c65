package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/internal/errs"
)

// The dashboard's fleet page: one page of devices by ID, filtered and
// counted in the database, so that 100,000 devices are never read whole.
// The time last seen is read through device_seen (migration 4), like
// every device query of deviceFrom.

// DevicePage returns one page of the devices q selects, by ID.
func (s *Store) DevicePage(ctx context.Context, q fleet.DeviceQuery) (*fleet.DevicePage, error) {
	if q.Limit < 1 || q.Limit > fleet.MaxPageSize {
		return nil, errs.Usagef("", "a page holds 1 to %d devices, not %d", fleet.MaxPageSize, q.Limit)
	}
	if q.After != "" && q.Before != "" {
		return nil, errs.Usagef("", "a page is read after a device or before one, not both")
	}
	where, args := s.pageWhere(q)
	page := &fleet.DevicePage{}
	var count string
	var cargs []any
	switch {
	case len(where) == 0 && q.Presence == "":
		// Every device has one device_seen row: the narrow table counts
		// them with less to read (PostgreSQL counts by reading rows).
		count = `SELECT COUNT(*) FROM device_seen`
	case len(where) == 0:
		count, cargs = presenceCount(q)
	default:
		cw, ca := where, args
		if q.Presence != "" {
			// The offline devices, the silent and the revoked, as a set
			// read once (a fleet that reports has few of them): each
			// device the other filters select is looked up in it, or,
			// for the offline, the set drives the count. No condition
			// names a column of the devices table outside its indexes,
			// so a count with a model or a site reads an index, not
			// every device's row. (Testing "seen lately" device by
			// device made PostgreSQL keep the set of every online
			// device instead.)
			op := "IN"
			if q.Presence == fleet.PresenceOnline {
				op = "NOT IN"
			}
			cw = append(slices.Clip(cw), "devices.id "+op+" ("+offlineIDs+")")
			ca = append(slices.Clip(ca), nanos(q.Now))
		}
		count, cargs = `SELECT COUNT(*) FROM devices WHERE `+strings.Join(cw, " AND "), ca
	}
	if err := s.r.QueryRowContext(ctx, s.q(count), cargs...).Scan(&page.Total); err != nil {
		return nil, fmt.Errorf("count devices: %w", err)
	}
	if q.Presence != "" {
		// The page itself: the device_seen row deviceFrom joins, tested
		// as the devices come in ID order, until the page is full.
		on := "(devices.revoked IS NULL AND " + onlineCond("device_seen") + ")"
		if q.Presence == fleet.PresenceOffline {
			on = "NOT " + on
		}
		where = append(where, on)
		args = append(args, nanos(q.Now))
	}
	order := "ASC"
	switch {
	case q.After != "":
		where = append(where, "devices.id > ?")
		args = append(args, q.After)
	case q.Before != "":
		where = append(where, "devices.id < ?")
		args = append(args, q.Before)
		order = "DESC"
	}
	query := `SELECT ` + deviceColumns + ` FROM ` + deviceFrom
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += fmt.Sprintf(" ORDER BY devices.id %s LIMIT %d", order, q.Limit+1)
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		page.Devices = append(page.Devices, *d)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(page.Devices) > q.Limit {
		page.More = true
		page.Devices = page.Devices[:q.Limit]
	}
	if order == "DESC" {
		slices.Reverse(page.Devices)
	}
	return page, nil
}

// pageWhere is the condition of q's filters, its presence and paging
// aside (presenceWhere).
func (s *Store) pageWhere(q fleet.DeviceQuery) ([]string, []any) {
	var where []string
	var args []any
	if q.Site != "" {
		where = append(where, "devices.site = ?")
		args = append(args, q.Site)
	}
	if q.Component != "" || q.Version != "" || q.State != "" {
		// Without a site: a set from the components' indexes (name,
		// installed) and (name, state). With one (a few hundred devices
		// by its index): a probe for each of them.
		sub := []string{"1 = 1"}
		if q.Site != "" {
			sub[0] = "c.device_id = devices.id"
		}
		sub = append(sub, componentConds(q.Component, q.Version, q.State, &args)...)
		if q.Site != "" {
			where = append(where, "EXISTS (SELECT 1 FROM components c WHERE "+strings.Join(sub, " AND ")+")")
		} else {
			where = append(where, "devices.id IN (SELECT c.device_id FROM components c WHERE "+strings.Join(sub, " AND ")+")")
		}
	}
	// The model and search keys are columns of their own, set at
	// enrollment (migration 5): index lookups, not a read of every
	// device's instrument JSON.
	if q.Model != "" {
		where = append(where, "devices.model = ?")
		args = append(args, q.Model)
	}
	if q.Search != "" {
		// A prefix of the ASCII lower-case key is one range of its index
		// (byte order: BINARY in SQLite, COLLATE "C" in PostgreSQL).
		lo := searchKey(q.Search)
		hi := lo + "\U0010FFFF"
		where = append(where, `((devices.search_id >= ? AND devices.search_id < ?) OR (devices.search_instrument >= ? AND devices.search_instrument < ?)
			OR (devices.search_serial >= ? AND devices.search_serial < ?))`)
		args = append(args, lo, hi, lo, hi, lo, hi)
	}
	return where, args
}

// presenceCount counts the devices online (or offline) as of q.Now with
// one read of the narrow device_seen table and the index of revoked
// devices, never the devices table.
func presenceCount(q fleet.DeviceQuery) (string, []any) {
	if q.Presence == fleet.PresenceOnline {
		return `SELECT COUNT(*) FROM device_seen s WHERE ` + onlineCond("s") + ` AND s.device_id NOT IN (` + revokedIDs + `)`, []any{nanos(q.Now)}
	}
	return `SELECT COUNT(*) FROM (` + offlineIDs + `) o`, []any{nanos(q.Now)}
}

// revokedIDs are the revoked devices, from their partial index.
const revokedIDs = `SELECT id FROM devices WHERE revoked IS NOT NULL`

// offlineIDs are the devices that are not online as of its one argument
// (now, nanoseconds): the silent that are not revoked, from device_seen,
// and the revoked, from their index. The two parts never share a device
// (a revoked device is usually silent too), so UNION ALL counts each once
// without the sort or hash a UNION's deduplication costs (2.5 times the
// page's time on SQLite). A union, not an OR of the two conditions:
// PostgreSQL plans an OR as a read of every device.
var offlineIDs = `SELECT s.device_id FROM device_seen s WHERE NOT ` + onlineCond("s") + ` AND s.device_id NOT IN (` + revokedIDs + `) UNION ALL ` + revokedIDs

// maxPollInterval bounds the poll interval the store keeps (ten years),
// so that three of them, added to a time, stay within 64 bits.
const maxPollInterval = 10 * 365 * 24 * time.Hour

// pollColumn is the poll interval kept in device_seen.poll_interval.
func pollColumn(iv time.Duration) int64 {
	return int64(min(max(iv, 0), maxPollInterval))
}

// onlineCond is fleet.Device.Online for device_seen's row alias as of its
// one argument, now in nanoseconds: seen, and less than three poll
// intervals ago (fleet.DefaultPollInterval until the device says its
// own).
func onlineCond(alias string) string {
	return fmt.Sprintf("(%[1]s.last_seen > 0 AND %[1]s.last_seen + 3 * CASE WHEN %[1]s.poll_interval > 0 THEN %[1]s.poll_interval ELSE %[2]d END > ?)",
		alias, int64(fleet.DefaultPollInterval))
}

// searchKey is s in ASCII lower case, as the search columns keep device
// IDs, instrument IDs and serial numbers (the same as SQLite's LOWER, and
// what migration 5 computes on both databases).
func searchKey(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

// ComponentTallies counts the rollouts page's numbers from the components
// table's index (grouped in its order, no device's state read), less the
// devices device_seen says are silent or are revoked, which a fleet that
// reports has few of.
func (s *Store) ComponentTallies(ctx context.Context, now time.Time) (*fleet.Tallies, error) {
	t := &fleet.Tallies{}
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM devices`).Scan(&t.Devices); err != nil {
		return nil, fmt.Errorf("count devices: %w", err)
	}
	type key struct {
		name, channel, installed, staged, failed, state string
		byHand                                          int
	}
	byKey := map[key]*fleet.ComponentTally{}
	var order []key
	const cols = `c.name, c.channel, c.installed, c.staged, c.failed, c.state, c.by_hand`
	rows, err := s.r.QueryContext(ctx, `SELECT `+cols+`, COUNT(*) FROM components c GROUP BY `+cols)
	if err != nil {
		return nil, fmt.Errorf("count components: %w", err)
	}
	for rows.Next() {
		var k key
		var n int
		if err := rows.Scan(&k.name, &k.channel, &k.installed, &k.staged, &k.failed, &k.state, &k.byHand, &n); err != nil {
			rows.Close()
			return nil, err
		}
		byKey[k] = &fleet.ComponentTally{Name: k.name, Channel: k.channel, Installed: k.installed, Staged: k.staged, Failed: k.failed,
			State: k.state, ByHand: k.byHand != 0, Devices: n}
		order = append(order, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// The silent and the revoked: the offline set, read once from the
	// narrow device_seen table and the revoked devices' index, then only
	// their components.
	on, oargs := onlineCond("s"), []any{nanos(now)}
	rows, err = s.r.QueryContext(ctx, s.q(`SELECT `+cols+`, CASE WHEN d.revoked IS NULL THEN 0 ELSE 1 END, COUNT(*)
		FROM components c JOIN devices d ON d.id = c.device_id
		WHERE c.device_id IN (`+offlineIDs+`)
		GROUP BY `+cols+`, CASE WHEN d.revoked IS NULL THEN 0 ELSE 1 END`), oargs...)
	if err != nil {
		return nil, fmt.Errorf("count silent components: %w", err)
	}
	for rows.Next() {
		var k key
		var revoked, n int
		if err := rows.Scan(&k.name, &k.channel, &k.installed, &k.staged, &k.failed, &k.state, &k.byHand, &revoked, &n); err != nil {
			rows.Close()
			return nil, err
		}
		ct := byKey[k]
		if ct == nil {
			continue // a report in between the two reads
		}
		if revoked != 0 {
			ct.Devices -= n
		} else {
			ct.Silent += n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, k := range order {
		ct := byKey[k]
		ct.Silent = min(ct.Silent, max(ct.Devices, 0))
		if ct.Devices > 0 {
			t.Components = append(t.Components, *ct)
			names[ct.Name] = true
		}
	}
	// The rollout's percent: per component and channel, the newest full
	// report that carried one (the partial index components_pointer).
	type nc struct{ name, channel string }
	seen := map[nc]bool{}
	for _, ct := range t.Components {
		k := nc{ct.Name, ct.Channel}
		if seen[k] {
			continue
		}
		seen[k] = true
		p := fleet.PointerTally{Name: k.name, Channel: k.channel}
		var at int64
		err := s.r.QueryRowContext(ctx, s.q(`SELECT channel_release, rollout_percent, reported FROM components
			WHERE name = ? AND channel = ? AND rollout_percent > 0 ORDER BY reported DESC LIMIT 1`), k.name, k.channel).Scan(&p.Release, &p.Percent, &at)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("rollout percent: %w", err)
		}
		p.Reported = fromNanos(at)
		t.Pointers = append(t.Pointers, p)
	}
	// Failure reasons: per component, its failed rows by the (name,
	// state) index, the reporting unrevoked devices among them.
	for _, name := range slices.Sorted(maps.Keys(names)) {
		args := append([]any{name}, oargs...)
		rows, err := s.r.QueryContext(ctx, s.q(`SELECT c.channel, c.failed, c.reason, COUNT(*)
			FROM components c CROSS JOIN device_seen s
			WHERE c.name = ? AND c.state = 'failed' AND c.by_hand = 0 AND s.device_id = c.device_id AND `+on+`
				AND c.device_id NOT IN (`+revokedIDs+`)
			GROUP BY c.channel, c.failed, c.reason`), args...)
		if err != nil {
			return nil, fmt.Errorf("count failure reasons: %w", err)
		}
		for rows.Next() {
			r := fleet.ReasonTally{Name: name}
			if err := rows.Scan(&r.Channel, &r.Failed, &r.Reason, &r.Devices); err != nil {
				rows.Close()
				return nil, err
			}
			t.Reasons = append(t.Reasons, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return t, nil
}
