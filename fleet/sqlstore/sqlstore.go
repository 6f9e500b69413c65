// Package sqlstore is the fleet service's store in SQL: SQLite through a
// pure-Go driver (modernc.org/sqlite; one file, nothing to install) or
// PostgreSQL through pgx (any number of stateless `bcfleet serve`
// processes on one database). Both are one implementation of fleet.Store
// over database/sql; the schema is versioned with goose (migrations/),
// applied on Open, one dialect directory per database.
package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/errs"
)

//go:embed migrations
var migrations embed.FS

// Store is a fleet.Store on SQLite or PostgreSQL.
type Store struct {
	// w takes every change; r every read. For SQLite w is one
	// connection (SQLite has one writer at a time; waiting in Go is
	// cheaper than SQLITE_BUSY) and r a pool of read-only connections
	// that WAL lets run beside it. For PostgreSQL both are one pool.
	w, r     *sql.DB
	postgres bool
	batch    *batcher // group commit of reports (batch.go)
	stmts    sync.Map // stmtKey → *sql.Stmt: the hot queries, parsed once
	// SQLite's checkpointer (startCheckpointer).
	ckStop chan struct{}
	ckDone chan struct{}
	ckOnce sync.Once
}

// checkpointEvery is how often SQLite's write-ahead log is checkpointed
// into the database file.
const checkpointEvery = time.Second

// startCheckpointer checkpoints SQLite's WAL on its own connection once a
// second (PASSIVE: it copies what no reader needs, never blocking the
// writer or readers), instead of SQLite's automatic checkpoint, which runs
// inside the commit that crosses 1,000 pages and stalls every report
// waiting for that commit. Durability is the WAL's either way.
func (s *Store) startCheckpointer(ck *sql.DB) {
	s.ckStop, s.ckDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.ckDone)
		defer ck.Close()
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		for {
			select {
			case <-s.ckStop:
				ck.Exec("PRAGMA wal_checkpoint(PASSIVE)")
				return
			case <-t.C:
				ck.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			}
		}
	}()
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// prepared returns the prepared statement of query on db (database/sql
// prepares it on each connection of the pool as needed): the queries of
// every report are parsed once, not once a report.
func (s *Store) prepared(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	key := stmtKey{db, query} // as written: no placeholder rewrite on the hot path
	if v, ok := s.stmts.Load(key); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, s.q(query))
	if err != nil {
		return nil, err
	}
	if v, loaded := s.stmts.LoadOrStore(key, st); loaded {
		st.Close()
		return v.(*sql.Stmt), nil
	}
	return st, nil
}

// Queries of every report, prepared when the store opens (preparing on
// the writer inside a transaction would wait for the connection the
// transaction holds: SQLite's writer is one connection).
const (
	// What a report changes lives in device_seen (migration 4): a
	// heartbeat rewrites that narrow row, never the devices row.
	qReportHeartbeat = `UPDATE device_seen SET counter = ?, last_seen = ? WHERE device_id = ? AND counter < ?`
	qReportSeen      = `UPDATE device_seen SET counter = ?, last_seen = ?, digest = ?, poll_interval = ? WHERE device_id = ? AND counter < ?`
	qReportState     = `UPDATE devices SET state = ? WHERE id = ?`
	qDeviceExists    = `SELECT 1 FROM devices WHERE id = ?`
	qDeleteComps     = `DELETE FROM components WHERE device_id = ?`
	qInsertComp      = `INSERT INTO components (device_id, name, installed, state, channel, staged, failed, by_hand, reason, channel_release, rollout_percent, reported) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qDevice          = `SELECT ` + deviceColumns + ` FROM ` + deviceFrom + ` WHERE devices.id = ?`
	qDeviceAuth      = `SELECT devices.id, public_key, revoked, device_seen.counter, device_seen.digest FROM ` + deviceFrom + ` WHERE devices.id = ?`
	// qReportFullPG is a full report in one statement on PostgreSQL (one
	// round trip): the device's counter if the report's is above it, its
	// state, its components replaced, and whether it was stored or the
	// device exists at all.
	qReportFullPG = `WITH s AS (
		UPDATE device_seen SET counter = $2, last_seen = $3, digest = $8, poll_interval = $9 WHERE device_id = $1 AND counter < $2 RETURNING device_id AS id),
	u AS (
		UPDATE devices SET state = $4 FROM s WHERE devices.id = s.id RETURNING devices.id),
	del AS (
		DELETE FROM components c USING s WHERE c.device_id = s.id AND c.name <> ALL($5::text[])),
	ins AS (
		INSERT INTO components (device_id, name, installed, state, channel, staged, failed, by_hand, reason, channel_release, rollout_percent, reported)
		SELECT s.id, v.name, v.installed, v.state, v.channel, v.staged, v.failed, v.by_hand, v.reason, v.channel_release, v.rollout_percent, $3
		FROM s, unnest($5::text[], $6::text[], $7::text[], $10::text[], $11::text[], $12::text[], $13::int[], $14::text[], $16::text[], $17::int[])
			AS v(name, installed, state, channel, staged, failed, by_hand, reason, channel_release, rollout_percent)
		ON CONFLICT (device_id, name) DO UPDATE SET installed = EXCLUDED.installed, state = EXCLUDED.state, channel = EXCLUDED.channel,
			staged = EXCLUDED.staged, failed = EXCLUDED.failed, by_hand = EXCLUDED.by_hand, reason = EXCLUDED.reason,
			channel_release = EXCLUDED.channel_release, rollout_percent = EXCLUDED.rollout_percent, reported = EXCLUDED.reported),
	hist AS (
		INSERT INTO report_history (device_id, counter, time, record) SELECT s.id, $2, $3, $15 FROM s),
	prune AS (
		DELETE FROM report_history h USING s WHERE h.device_id = s.id AND h.counter <= (
			SELECT counter FROM report_history WHERE device_id = $1 ORDER BY counter DESC LIMIT 1 OFFSET ` + pruneOffsetPG + `))
	SELECT (SELECT count(*) FROM u), EXISTS (SELECT 1 FROM devices WHERE id = $1)`
)

func (s *Store) prepareHot(ctx context.Context) error {
	hot := []string{qReportHeartbeat, qReportSeen, qReportState, qDeviceExists, qDeleteComps, qInsertComp, qInsertHistory, qPruneHistory}
	if s.postgres {
		hot = append(hot, qReportFullPG, qHeartbeatsPG)
	}
	for _, q := range hot {
		if _, err := s.prepared(ctx, s.w, q); err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	if _, err := s.prepared(ctx, s.r, qDeviceAuth); err != nil {
		return err
	}
	_, err := s.prepared(ctx, s.r, qDevice)
	return err
}

// DeviceAuth reads what checking a heartbeat needs, without the
// device's state.
func (s *Store) DeviceAuth(ctx context.Context, id string) (*fleet.Device, error) {
	st, err := s.prepared(ctx, s.r, qDeviceAuth)
	if err != nil {
		return nil, err
	}
	var d fleet.Device
	var revoked sql.NullInt64
	var counter int64
	err = st.QueryRowContext(ctx, id).Scan(&d.ID, &d.PublicKey, &revoked, &counter, &d.State.Digest)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("device %s: %w", id, fleet.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if revoked.Valid {
		t := fromNanos(revoked.Int64)
		d.Revoked = &t
	}
	d.State.Counter = uint64(counter)
	return &d, nil
}

// txStmt is the writer's prepared statement of query bound to tx, or nil
// if it was not prepared when the store opened.
func (s *Store) txStmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	v, ok := s.stmts.Load(stmtKey{s.w, query})
	if !ok {
		return nil
	}
	return tx.StmtContext(ctx, v.(*sql.Stmt))
}

// txExec runs query inside tx, prepared if it is one of the hot ones.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := s.txStmt(ctx, tx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, s.q(query), args...)
}

var _ fleet.Store = (*Store)(nil)

// Open opens (creating and migrating as needed) the store that dsn names:
// "sqlite:PATH" or "postgres://…" (also "postgresql://…", as libpq
// takes it).
func Open(ctx context.Context, dsn string) (*Store, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	}
	return nil, errs.Usagef("db", "--db %q: want sqlite:PATH or postgres://USER@HOST:PORT/DB", redact(dsn))
}

// redact hides a password in a DSN that is quoted in an error.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return dsn
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errs.Usagef("db", "--db sqlite:PATH: the path is empty")
	}
	if dir := filepath.Dir(path); dir != "." {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, errs.Usagef("db", "--db sqlite:%s: directory %s does not exist", path, dir)
		}
	}
	// The file holds sealed personal data and device keys' records: only
	// its owner reads it. SQLite gives its -wal and -shm files the
	// database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--db sqlite:%s: %w", path, err)
	}
	f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// Checkpoints run beside the writer (checkpointer), not inside a
	// commit that a report waits for.
	q.Add("_pragma", "wal_autocheckpoint(0)")
	q.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("--db sqlite:%s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w, goose.DialectSQLite3, "migrations/sqlite", nil); err != nil {
		w.Close()
		return nil, fmt.Errorf("--db sqlite:%s: %w", path, err)
	}
	rq := url.Values{}
	rq.Add("_pragma", "busy_timeout(10000)")
	rq.Add("_pragma", "query_only(ON)")
	r, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	cq := url.Values{}
	cq.Add("_pragma", "busy_timeout(10000)")
	cq.Add("_pragma", "synchronous(FULL)")
	ck, err := sql.Open("sqlite", "file:"+path+"?"+cq.Encode())
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	ck.SetMaxOpenConns(1)
	st := &Store{w: w, r: r}
	if err := st.prepareHot(ctx); err != nil {
		ck.Close()
		st.Close()
		return nil, err
	}
	st.startBatcher(1)
	st.startCheckpointer(ck)
	return st, nil
}

func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("--db %s: %w", redact(dsn), err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("--db %s: cannot reach PostgreSQL: %w", redact(dsn), err)
	}
	// Several servers may start at once: one migrates, the others wait.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := migrate(ctx, db, goose.DialectPostgres, "migrations/postgres", locker); err != nil {
		db.Close()
		return nil, fmt.Errorf("--db %s: %w", redact(dsn), err)
	}
	st := &Store{w: db, r: db, postgres: true}
	if err := st.prepareHot(ctx); err != nil {
		st.Close()
		return nil, err
	}
	st.startBatcher(4)
	return st, nil
}

func migrate(ctx context.Context, db *sql.DB, dialect goose.Dialect, dir string, locker lock.SessionLocker) error {
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		return err
	}
	var opts []goose.ProviderOption
	if locker != nil {
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db, sub, opts...)
	if err != nil {
		return fmt.Errorf("schema migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("schema migration: %w", err)
	}
	return nil
}

// SchemaVersion is the version of the newest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied = `+s.boolean(true)).Scan(&v)
	return v, err
}

// Close closes the store's connections.
func (s *Store) Close() error {
	if s.batch != nil {
		s.batch.close()
	}
	if s.ckStop != nil {
		s.ckOnce.Do(func() { close(s.ckStop) })
		<-s.ckDone
	}
	s.stmts.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// q turns ? placeholders into PostgreSQL's $n (no query here has a ? in
// a literal).
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *Store) boolean(v bool) string {
	if v {
		return "TRUE"
	}
	return "FALSE"
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isUnique says whether err is a unique-constraint violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CreateToken stores an enrollment token's hash.
func (s *Store) CreateToken(ctx context.Context, t fleet.Token) error {
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO tokens (id, site, hash, created, expires, uses, revoked) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		t.ID, t.Site, t.Hash, nanos(t.Created), nanos(t.Expires), t.Uses, b2i(t.Revoked))
	if isUnique(err) {
		return fmt.Errorf("token %s: %w", t.ID, fleet.ErrExists)
	}
	return err
}

// UseToken takes one use of a valid token in one statement, so two
// concurrent enrollments never both take the last use.
func (s *Store) UseToken(ctx context.Context, hash []byte, now time.Time) (*fleet.Token, error) {
	row := s.w.QueryRowContext(ctx, s.q(`UPDATE tokens SET uses = uses - 1
		WHERE hash = ? AND uses > 0 AND revoked = 0 AND expires > ?
		RETURNING id, site, hash, created, expires, uses, revoked`), hash, nanos(now))
	t, err := scanToken(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fleet.ErrBadToken
	}
	return t, err
}

type scanner interface{ Scan(...any) error }

func scanToken(row scanner) (*fleet.Token, error) {
	var t fleet.Token
	var created, expires int64
	var revoked int
	if err := row.Scan(&t.ID, &t.Site, &t.Hash, &created, &expires, &t.Uses, &revoked); err != nil {
		return nil, err
	}
	t.Created, t.Expires, t.Revoked = fromNanos(created), fromNanos(expires), revoked != 0
	return &t, nil
}

// RevokeToken revokes a token.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE tokens SET revoked = 1 WHERE id = ?`), id)
	return affected(res, err, "token "+id)
}

func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, fleet.ErrNotFound)
	}
	return nil
}

// Tokens lists tokens, newest first.
func (s *Store) Tokens(ctx context.Context) ([]fleet.Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, site, hash, created, expires, uses, revoked FROM tokens ORDER BY created DESC, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fleet.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}

// stateJSON is a device's state without what has columns of its own.
func stateJSON(st fleet.DeviceState) (string, error) {
	st.Counter, st.LastSeen = 0, time.Time{}
	b, err := json.Marshal(st)
	return string(b), err
}

// AddDevice stores a newly enrolled device.
func (s *Store) AddDevice(ctx context.Context, d fleet.Device) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.insertDevice(ctx, tx, d) })
}

// Enroll takes the token's use, stores the device and retires the one it
// replaces in one transaction: a refusal at any step rolls all back.
func (s *Store) Enroll(ctx context.Context, tokenHash []byte, now time.Time, d fleet.Device, replacesKey []byte) (*fleet.Token, error) {
	var tok *fleet.Token
	err := s.tx(ctx, func(tx *sql.Tx) error {
		t, err := scanToken(tx.QueryRowContext(ctx, s.q(`UPDATE tokens SET uses = uses - 1
			WHERE hash = ? AND uses > 0 AND revoked = 0 AND expires > ?
			RETURNING id, site, hash, created, expires, uses, revoked`), tokenHash, nanos(now)))
		if errors.Is(err, sql.ErrNoRows) {
			return fleet.ErrBadToken
		}
		if err != nil {
			return err
		}
		tok = t
		d.Site = t.Site
		if d.Replaces != "" {
			var site string
			var key []byte
			err := tx.QueryRowContext(ctx, s.q(`SELECT site, public_key FROM devices WHERE id = ?`), d.Replaces).Scan(&site, &key)
			if errors.Is(err, sql.ErrNoRows) || (err == nil && (site != t.Site || !bytes.Equal(key, replacesKey))) {
				return fmt.Errorf("device %s of site %s: %w", d.Replaces, t.Site, fleet.ErrNotFound)
			}
			if err != nil {
				return err
			}
		}
		if err := s.insertDevice(ctx, tx, d); err != nil {
			return err
		}
		if d.Replaces != "" {
			_, err := tx.ExecContext(ctx, s.q(`UPDATE devices SET revoked = COALESCE(revoked, ?) WHERE id = ?`), nanos(now), d.Replaces)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}

func (s *Store) insertDevice(ctx context.Context, tx *sql.Tx, d fleet.Device) error {
	inst, err := json.Marshal(d.Instrument)
	if err != nil {
		return err
	}
	state, err := stateJSON(d.State)
	if err != nil {
		return err
	}
	var revoked any
	if d.Revoked != nil {
		revoked = nanos(*d.Revoked)
	}
	// The model and search keys are columns of their own (migration 5,
	// dashboard.go), set here once: a device's instrument never changes.
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO devices
		(id, site, public_key, enrolled, revoked, sealed, email_hash, instrument, replaces, state, model, search_id, search_instrument, search_serial)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		d.ID, d.Site, d.PublicKey, nanos(d.Enrolled), revoked, d.Sealed, d.EmailHash, string(inst), d.Replaces, state,
		d.Instrument.Model, searchKey(d.ID), searchKey(d.Instrument.ID), searchKey(d.Instrument.Serial))
	if isUnique(err) {
		return fmt.Errorf("device %s: %w", d.ID, fleet.ErrExists)
	}
	if err != nil {
		return err
	}
	if d.State.Counter > math.MaxInt64 {
		return fmt.Errorf("%w: device %s: counter %d is out of range", errMalformed, d.ID, d.State.Counter)
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO device_seen (device_id, counter, last_seen, digest, poll_interval) VALUES (?, ?, ?, ?, ?)`),
		d.ID, int64(d.State.Counter), nanos(d.State.LastSeen), d.State.Digest, pollColumn(d.State.PollInterval))
	if err != nil {
		return err
	}
	return s.putComponents(ctx, tx, d.ID, d.State, false)
}

// putComponents replaces the device's component rows (what filters use).
func (s *Store) putComponents(ctx context.Context, tx *sql.Tx, id string, st fleet.DeviceState, clear bool) error {
	if err := checkComponents(id, st.Components); err != nil {
		return err
	}
	if clear {
		if _, err := s.txExec(ctx, tx, qDeleteComps, id); err != nil {
			return err
		}
	}
	for _, c := range st.Components {
		if _, err := s.txExec(ctx, tx, qInsertComp, id, c.Name, c.Installed, c.State, c.Channel, c.Staged, c.Failed, b2i(c.ByHand), c.Reason,
			c.ChannelRelease, c.RolloutPercent, nanos(st.LastSeen)); err != nil {
			return err
		}
	}
	return nil
}

// saveFullPG stores a full report with qReportFullPG.
func (s *Store) saveFullPG(ctx context.Context, tx *sql.Tx, id string, u fleet.ReportUpdate) error {
	state, err := stateJSON(u.State)
	if err != nil {
		return err
	}
	n := len(u.State.Components)
	names, installed, states := make([]string, n), make([]string, n), make([]string, n)
	channels, staged, failed, reasons := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	byHand, percents, pointed := make([]int32, n), make([]int32, n), make([]string, n)
	for i, c := range u.State.Components {
		names[i], installed[i], states[i] = c.Name, c.Installed, c.State
		channels[i], staged[i], failed[i], byHand[i], reasons[i] = c.Channel, c.Staged, c.Failed, int32(b2i(c.ByHand)), c.Reason
		pointed[i], percents[i] = c.ChannelRelease, int32(c.RolloutPercent)
	}
	st := s.txStmt(ctx, tx, qReportFullPG)
	if st == nil {
		return fmt.Errorf("the full report statement is not prepared")
	}
	var stored int
	var exists bool
	rec, err := recordJSON(u.State)
	if err != nil {
		return err
	}
	if err := st.QueryRowContext(ctx, id, int64(u.Counter), nanos(u.LastSeen), state, names, installed, states, u.State.Digest,
		pollColumn(u.State.PollInterval), channels, staged, failed, byHand, reasons, rec, pointed, percents).Scan(&stored, &exists); err != nil {
		return err
	}
	switch {
	case stored == 1:
		return nil
	case exists:
		return fleet.ErrReplayed
	default:
		return fmt.Errorf("device %s: %w", id, fleet.ErrNotFound)
	}
}

// checkComponents refuses a component listed twice.
func checkComponents(id string, cs []wire.Component) error {
	seen := make(map[string]bool, len(cs))
	for _, c := range cs {
		if seen[c.Name] {
			return fmt.Errorf("%w: device %s: component %s is listed twice", errMalformed, id, c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// deviceColumns are what scanDevice reads, from deviceFrom.
const (
	deviceColumns = `devices.id, site, public_key, enrolled, revoked, sealed, email_hash, instrument, replaces, device_seen.counter, device_seen.last_seen, state`
	deviceFrom    = `devices JOIN device_seen ON device_seen.device_id = devices.id`
)

func scanDevice(row scanner) (*fleet.Device, error) {
	var d fleet.Device
	var enrolled, counter, lastSeen int64
	var revoked sql.NullInt64
	var inst, state string
	if err := row.Scan(&d.ID, &d.Site, &d.PublicKey, &enrolled, &revoked, &d.Sealed, &d.EmailHash, &inst, &d.Replaces, &counter, &lastSeen, &state); err != nil {
		return nil, err
	}
	d.Enrolled = fromNanos(enrolled)
	if revoked.Valid {
		t := fromNanos(revoked.Int64)
		d.Revoked = &t
	}
	if err := json.Unmarshal([]byte(inst), &d.Instrument); err != nil {
		return nil, fmt.Errorf("device %s: instrument column: %w", d.ID, err)
	}
	if err := json.Unmarshal([]byte(state), &d.State); err != nil {
		return nil, fmt.Errorf("device %s: state column: %w", d.ID, err)
	}
	d.State.Counter, d.State.LastSeen = uint64(counter), fromNanos(lastSeen)
	return &d, nil
}

// Device returns one device.
func (s *Store) Device(ctx context.Context, id string) (*fleet.Device, error) {
	st, err := s.prepared(ctx, s.r, qDevice)
	if err != nil {
		return nil, err
	}
	d, err := scanDevice(st.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("device %s: %w", id, fleet.ErrNotFound)
	}
	return d, err
}

// Devices lists the devices f selects, by ID.
func (s *Store) Devices(ctx context.Context, f fleet.DeviceFilter) ([]fleet.Device, error) {
	var where []string
	var args []any
	if f.Site != "" {
		where = append(where, "site = ?")
		args = append(args, f.Site)
	}
	if f.EmailHash != nil {
		where = append(where, "email_hash = ?")
		args = append(args, f.EmailHash)
	}
	if f.Component != "" || f.Version != "" || f.State != "" {
		sub := append([]string{"c.device_id = devices.id"}, componentConds(f.Component, f.Version, f.State, &args)...)
		where = append(where, "EXISTS (SELECT 1 FROM components c WHERE "+strings.Join(sub, " AND ")+")")
	}
	query := `SELECT ` + deviceColumns + ` FROM ` + deviceFrom
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.r.QueryContext(ctx, s.q(query+" ORDER BY devices.id"), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fleet.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, rows.Err()
}

// componentConds are the conditions on the components table (alias c)
// that a component, version and state filter ask for, their arguments
// appended to args.
func componentConds(component, version, state string, args *[]any) []string {
	var conds []string
	for _, f := range []struct{ col, v string }{{"c.name", component}, {"c.installed", version}, {"c.state", state}} {
		if f.v != "" {
			conds = append(conds, f.col+" = ?")
			*args = append(*args, f.v)
		}
	}
	return conds
}

// RotateKey replaces a device's key in one statement, only from the key
// it has.
func (s *Store) RotateKey(ctx context.Context, id string, old, new []byte) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE devices SET public_key = ? WHERE id = ? AND public_key = ? AND revoked IS NULL`), new, id, old)
	if isUnique(err) {
		return fmt.Errorf("device %s: the new key: %w", id, fleet.ErrExists)
	}
	return affected(res, err, "device "+id+" with that key")
}

// RevokeDevice marks a device revoked (once: a second revoke keeps the
// first time).
func (s *Store) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE devices SET revoked = COALESCE(revoked, ?) WHERE id = ?`), nanos(at), id)
	return affected(res, err, "device "+id)
}

// saveReport stores one report in tx if its counter is above the stored
// one; the check and the write are one statement.
func (s *Store) saveReport(ctx context.Context, tx *sql.Tx, id string, u fleet.ReportUpdate) error {
	if u.Counter > math.MaxInt64 {
		return fmt.Errorf("%w: report counter %d is out of range", errMalformed, u.Counter)
	}
	var res sql.Result
	var err error
	if u.Full {
		// Everything that can refuse the report is checked before the
		// first write: a report is stored whole or not at all.
		if err := checkComponents(id, u.State.Components); err != nil {
			return err
		}
		if s.postgres {
			return s.saveFullPG(ctx, tx, id, u)
		}
		state, jerr := stateJSON(u.State)
		if jerr != nil {
			return jerr
		}
		res, err = s.txExec(ctx, tx, qReportSeen,
			int64(u.Counter), nanos(u.LastSeen), u.State.Digest, pollColumn(u.State.PollInterval), id, int64(u.Counter))
		if err == nil {
			if n, aerr := res.RowsAffected(); aerr == nil && n == 1 {
				if _, err := s.txExec(ctx, tx, qReportState, state, id); err != nil {
					return err
				}
			}
		}
	} else {
		res, err = s.txExec(ctx, tx, qReportHeartbeat,
			int64(u.Counter), nanos(u.LastSeen), id, int64(u.Counter))
	}
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		var one int
		var err error
		if st := s.txStmt(ctx, tx, qDeviceExists); st != nil {
			err = st.QueryRowContext(ctx, id).Scan(&one)
		} else {
			err = tx.QueryRowContext(ctx, s.q(qDeviceExists), id).Scan(&one)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("device %s: %w", id, fleet.ErrNotFound)
		}
		if err != nil {
			return err
		}
		return fleet.ErrReplayed
	}
	if u.Full {
		if err := s.putComponents(ctx, tx, id, u.State, true); err != nil {
			return err
		}
		return s.saveHistory(ctx, tx, id, u)
	}
	return nil
}

// AppendAccess appends to the hash-chained access log. On PostgreSQL the
// table is locked for the transaction, so two servers appending at once
// chain one after the other.
func (s *Store) AppendAccess(ctx context.Context, e fleet.AccessEntry) (*fleet.AccessEntry, error) {
	e.Time = e.Time.UTC()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if s.postgres {
			if _, err := tx.ExecContext(ctx, `LOCK TABLE access_log IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		e.Seq, e.Prev = 1, ""
		var seq int64
		var hash string
		err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
		switch {
		case err == nil:
			e.Seq, e.Prev = seq+1, hash
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		e.Hash = fleet.ChainHash(e)
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO access_log (seq, time, actor, action, target, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			e.Seq, nanos(e.Time), e.Actor, e.Action, e.Target, e.Prev, e.Hash)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// AccessLog returns the access log, oldest first.
func (s *Store) AccessLog(ctx context.Context) ([]fleet.AccessEntry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, time, actor, action, target, prev, hash FROM access_log ORDER BY seq`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fleet.AccessEntry
	for rows.Next() {
		var e fleet.AccessEntry
		var t int64
		if err := rows.Scan(&e.Seq, &t, &e.Actor, &e.Action, &e.Target, &e.Prev, &e.Hash); err != nil {
			return nil, err
		}
		e.Time = fromNanos(t)
		out = append(out, e)
	}
	return out, rows.Err()
}
