package sqlstore

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/beckmanconnect/bcupdate/internal/pgtest"
)

// TestMigrateDeviceSeen: a store written by schema 3 (counter and
// last_seen in devices, the digest only in the state JSON) opens at the
// newest schema with each device's counter, last-seen time and digest
// kept, so a replayed report is still refused and a heartbeat still
// matches; and migration 4 goes down again with them.
func TestMigrateDeviceSeen(t *testing.T) { eachMigrationStore(t, testMigrateDeviceSeen) }

func testMigrateDeviceSeen(t *testing.T, m migrationStore) {
	ctx := context.Background()
	db := m.migrateTo(t, ctx, 3, false)
	defer db.Close()
	ph := m.ph
	seen := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, id := range []string{"dev-a", "dev-b"} {
		_, err := db.ExecContext(ctx, ph(`INSERT INTO devices (id, site, public_key, enrolled, sealed, email_hash, instrument, counter, last_seen, state)
			VALUES (?, 'lab', ?, 1, ?, ?, '{}', ?, ?, ?)`),
			id, []byte("key-"+id), []byte("sealed"), []byte("hash"), int64(41+i), nanos(seen), `{"digest":"d-`+id+`"}`)
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	st, err := Open(ctx, m.dsn)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := st.SchemaVersion(ctx); err != nil || v < 4 {
		t.Fatalf("schema version %d %v", v, err)
	}
	d, err := st.DeviceAuth(ctx, "dev-b")
	if err != nil {
		t.Fatal(err)
	}
	if d.State.Counter != 42 || d.State.Digest != "d-dev-b" {
		t.Errorf("after migrating: counter %d digest %q, want 42 d-dev-b", d.State.Counter, d.State.Digest)
	}
	full, err := st.Device(ctx, "dev-a")
	if err != nil {
		t.Fatal(err)
	}
	if full.State.Counter != 41 || !full.State.LastSeen.Equal(seen) {
		t.Errorf("after migrating: counter %d last seen %v, want 41 %v", full.State.Counter, full.State.LastSeen, seen)
	}
	st.Close()

	// Down to 3 and up again keeps them too.
	db2 := m.migrateTo(t, ctx, 3, true)
	defer db2.Close()
	var counter, last int64
	if err := db2.QueryRowContext(ctx, ph(`SELECT counter, last_seen FROM devices WHERE id = ?`), "dev-b").Scan(&counter, &last); err != nil {
		t.Fatal(err)
	}
	if counter != 42 || last != nanos(seen) {
		t.Errorf("after going down: counter %d last_seen %d", counter, last)
	}
}

// migrationStore is one store's database for a migration test: its
// goose dialect and migrations, the DSN Open takes, and its placeholders.
type migrationStore struct {
	dialect goose.Dialect
	dir     string
	dsn     string
	ph      func(string) string
}

// eachMigrationStore runs test on a new SQLite database and, where
// PostgreSQL is installed, a new PostgreSQL database.
func eachMigrationStore(t *testing.T, test func(*testing.T, migrationStore)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fleet.db")
		test(t, migrationStore{goose.DialectSQLite3, "migrations/sqlite", "sqlite:" + path, func(q string) string { return q }})
	})
	t.Run("postgres", func(t *testing.T) {
		c := pgtest.Start(t)
		if c == nil {
			return
		}
		test(t, migrationStore{goose.DialectPostgres, "migrations/postgres", c.NewDB(t), (&Store{postgres: true}).q})
	})
}

// migrateTo opens m's database and migrates it up or down to version;
// the caller closes it.
func (m migrationStore) migrateTo(t *testing.T, ctx context.Context, version int64, down bool) *sql.DB {
	t.Helper()
	driver, dsn := "pgx", m.dsn
	if m.dialect == goose.DialectSQLite3 {
		driver, dsn = "sqlite", "file:"+strings.TrimPrefix(m.dsn, "sqlite:")+"?_pragma=foreign_keys(ON)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := fs.Sub(migrations, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(m.dialect, db, sub)
	if err != nil {
		t.Fatal(err)
	}
	if down {
		_, err = p.DownTo(ctx, version)
	} else {
		_, err = p.UpTo(ctx, version)
	}
	if err != nil {
		t.Fatal(err)
	}
	return db
}
