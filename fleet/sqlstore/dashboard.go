package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

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
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	page := &fleet.DevicePage{}
	// Counting needs device_seen only to tell online from offline.
	from := "devices"
	if q.Presence != "" {
		from = deviceFrom
	}
	if err := s.r.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM `+from+cond), args...).Scan(&page.Total); err != nil {
		return nil, fmt.Errorf("count devices: %w", err)
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

// pageWhere is the condition of q's filters (its paging aside).
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
		if q.Component != "" {
			sub = append(sub, "c.name = ?")
			args = append(args, q.Component)
		}
		if q.Version != "" {
			sub = append(sub, "c.installed = ?")
			args = append(args, q.Version)
		}
		if q.State != "" {
			sub = append(sub, "c.state = ?")
			args = append(args, q.State)
		}
		if q.Site != "" {
			where = append(where, "EXISTS (SELECT 1 FROM components c WHERE "+strings.Join(sub, " AND ")+")")
		} else {
			where = append(where, "devices.id IN (SELECT c.device_id FROM components c WHERE "+strings.Join(sub, " AND ")+")")
		}
	}
	// The instrument is a JSON column: a cheap test of its text first
	// (a value of plain characters appears in it as it is), then the
	// field itself.
	if q.Model != "" {
		if plainText(q.Model) {
			where = append(where, "devices.instrument "+s.ilike()+" ? ESCAPE '\\'")
			args = append(args, "%"+likeEscape(q.Model)+"%")
		}
		where = append(where, s.jsonText("devices.instrument", "model")+" = ?")
		args = append(args, q.Model)
	}
	if q.Search != "" {
		p := likePrefix(strings.ToLower(q.Search))
		cond := `(LOWER(devices.id) LIKE ? ESCAPE '\' OR LOWER(` + s.jsonText("devices.instrument", "id") +
			`) LIKE ? ESCAPE '\' OR LOWER(` + s.jsonText("devices.instrument", "serial") + `) LIKE ? ESCAPE '\')`
		cargs := []any{p, p, p}
		if plainText(q.Search) {
			cond = `(LOWER(devices.id) LIKE ? ESCAPE '\' OR (devices.instrument ` + s.ilike() + ` ? ESCAPE '\' AND ` + cond + `))`
			cargs = append([]any{p, "%" + likeEscape(q.Search) + "%"}, cargs...)
		}
		where = append(where, cond)
		args = append(args, cargs...)
	}
	if q.Presence == fleet.PresenceOnline || q.Presence == fleet.PresenceOffline {
		// fleet.Device.Online: seen, and less than three poll intervals
		// ago (fleet.DefaultPollInterval until the device says its own).
		iv := s.jsonInt("devices.state", "poll_interval")
		online := `(devices.revoked IS NULL AND device_seen.last_seen > 0 AND device_seen.last_seen > ? - 3 * (CASE WHEN ` + iv + ` > 0 THEN ` + iv + ` ELSE ? END))`
		if q.Presence == fleet.PresenceOffline {
			online = "NOT " + online
		}
		where = append(where, online)
		args = append(args, nanos(q.Now), int64(fleet.DefaultPollInterval))
	}
	return where, args
}

// jsonText is the text of field key of the JSON object in column.
func (s *Store) jsonText(column, key string) string {
	if s.postgres {
		return "(" + column + "::jsonb ->> '" + key + "')"
	}
	return "json_extract(" + column + ", '$." + key + "')"
}

// jsonInt is the integer field key of the JSON object in column (0 when
// absent).
func (s *Store) jsonInt(column, key string) string {
	if s.postgres {
		return "COALESCE((" + column + "::jsonb ->> '" + key + "')::bigint, 0)"
	}
	return "COALESCE(CAST(json_extract(" + column + ", '$." + key + "') AS INTEGER), 0)"
}

// likePrefix is a LIKE pattern (escape \) for values that start with p.
func likePrefix(p string) string { return likeEscape(p) + "%" }

// likeEscape escapes LIKE's wildcards and its escape character (\).
func likeEscape(p string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p)
}

// ilike is the case-insensitive LIKE (SQLite's LIKE is, for ASCII).
func (s *Store) ilike() string {
	if s.postgres {
		return "ILIKE"
	}
	return "LIKE"
}

// plainText says whether v is only letters, digits, spaces and ". _ -":
// characters JSON never escapes, so v appears in a JSON text as it is.
func plainText(v string) bool {
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
