package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
)

// Each release's counts over time (migration 6): a few rows an hour,
// written by the dashboard, never by a report.

// RecordRollouts stores the points at at (a release's point of that time
// recorded already stays) and deletes those older than keepSince, in one
// transaction.
func (s *Store) RecordRollouts(ctx context.Context, at time.Time, ps []fleet.RolloutPoint, keepSince time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, p := range ps {
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO rollout_history
				(component, channel, version, time, targeted, installed, staged, awaiting, failed, rolled_back, silent, pending)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (component, channel, version, time) DO NOTHING`),
				p.Component, p.Channel, p.Version, nanos(at), p.Targeted, p.Installed, p.Staged, p.Awaiting, p.Failed, p.RolledBack, p.Silent, p.Pending)
			if err != nil {
				return fmt.Errorf("record rollout %s %s: %w", p.Component, p.Version, err)
			}
		}
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM rollout_history WHERE time < ?`), nanos(keepSince))
		return err
	})
}

// RolloutHistory returns a release's points since since, oldest first.
func (s *Store) RolloutHistory(ctx context.Context, component, channel, version string, since time.Time) ([]fleet.RolloutPoint, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT time, targeted, installed, staged, awaiting, failed, rolled_back, silent, pending
		FROM rollout_history WHERE component = ? AND channel = ? AND version = ? AND time >= ? ORDER BY time`),
		component, channel, version, nanos(since))
	if err != nil {
		return nil, fmt.Errorf("rollout history: %w", err)
	}
	defer rows.Close()
	var out []fleet.RolloutPoint
	for rows.Next() {
		p := fleet.RolloutPoint{Channel: channel, RolloutStatus: fleet.RolloutStatus{Component: component, Version: version}}
		var t int64
		if err := rows.Scan(&t, &p.Targeted, &p.Installed, &p.Staged, &p.Awaiting, &p.Failed, &p.RolledBack, &p.Silent, &p.Pending); err != nil {
			return nil, err
		}
		p.Time = fromNanos(t)
		if tried := p.Installed + p.Failed + p.RolledBack; tried > 0 {
			p.FailureRate = float64(p.Failed+p.RolledBack) / float64(tried)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Each device's last full reports (migration 6), written with the report.
const qInsertHistory = `INSERT INTO report_history (device_id, counter, time, record) VALUES (?, ?, ?, ?)`

// qPruneHistory keeps the device's newest fleet.MaxReportHistory (the
// primary key's range of the device: no scan of others).
var qPruneHistory = `DELETE FROM report_history WHERE device_id = ? AND counter <= (
		SELECT counter FROM report_history WHERE device_id = ? ORDER BY counter DESC LIMIT 1 OFFSET ` + strconv.Itoa(fleet.MaxReportHistory) + `)`

// recordJSON is a full report's record in the report history.
func recordJSON(st fleet.DeviceState) (string, error) {
	b, err := json.Marshal(fleet.RecordOf(st))
	return string(b), err
}

// saveHistory adds a full report to the device's history and deletes the
// oldest beyond fleet.MaxReportHistory, in the report's transaction.
func (s *Store) saveHistory(ctx context.Context, tx *sql.Tx, id string, u fleet.ReportUpdate) error {
	rec, err := recordJSON(u.State)
	if err != nil {
		return err
	}
	if _, err := s.txExec(ctx, tx, qInsertHistory, id, int64(u.Counter), nanos(u.LastSeen), rec); err != nil {
		return fmt.Errorf("report history: %w", err)
	}
	if _, err := s.txExec(ctx, tx, qPruneHistory, id, id); err != nil {
		return fmt.Errorf("report history: %w", err)
	}
	return nil
}

// ReportHistory returns a device's last full reports, newest first.
func (s *Store) ReportHistory(ctx context.Context, id string) ([]fleet.ReportRecord, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT counter, time, record FROM report_history WHERE device_id = ? ORDER BY counter DESC LIMIT ?`),
		id, fleet.MaxReportHistory)
	if err != nil {
		return nil, fmt.Errorf("report history: %w", err)
	}
	defer rows.Close()
	var out []fleet.ReportRecord
	for rows.Next() {
		var counter, t int64
		var rec string
		if err := rows.Scan(&counter, &t, &rec); err != nil {
			return nil, err
		}
		var r fleet.ReportRecord
		if err := json.Unmarshal([]byte(rec), &r); err != nil {
			return nil, fmt.Errorf("device %s: report %d's record: %w", id, counter, err)
		}
		r.Counter, r.Time = uint64(counter), fromNanos(t)
		out = append(out, r)
	}
	return out, rows.Err()
}

// pruneOffsetPG is qReportFullPG's offset of the newest report to delete
// from: fleet.MaxReportHistory - 1, because that one statement sees the
// device's history as it was before its own insert (the store suite
// checks that exactly fleet.MaxReportHistory are kept).
const pruneOffsetPG = "49"
