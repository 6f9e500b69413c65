package sqlstore

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
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
func TestMigrateDeviceSeen(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "fleet.db")
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(ON)")
		if err != nil {
			t.Fatal(err)
		}
		testMigrateDeviceSeen(t, db, goose.DialectSQLite3, "migrations/sqlite", "sqlite:"+path)
	})
	t.Run("postgres", func(t *testing.T) {
		c := pgtest.Start(t)
		if c == nil {
			return
		}
		dsn := c.NewDB(t)
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		testMigrateDeviceSeen(t, db, goose.DialectPostgres, "migrations/postgres", dsn)
	})
}

func testMigrateDeviceSeen(t *testing.T, db *sql.DB, dialect goose.Dialect, dir, dsn string) {
	ctx := context.Background()
	defer db.Close()
	sub, err := fs.Sub(migrations, dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(dialect, db, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ph := func(q string) string { return q }
	if dialect == goose.DialectPostgres {
		ph = func(q string) string { return (&Store{postgres: true}).q(q) }
	}
	for i, id := range []string{"dev-a", "dev-b"} {
		_, err := db.ExecContext(ctx, ph(`INSERT INTO devices (id, site, public_key, enrolled, sealed, email_hash, instrument, counter, last_seen, state)
			VALUES (?, 'lab', ?, 1, ?, ?, '{}', ?, ?, ?)`),
			id, []byte("key-"+id), []byte("sealed"), []byte("hash"), int64(41+i), nanos(seen), `{"digest":"d-`+id+`"}`)
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	st, err := Open(ctx, dsn)
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
	db2, err := sql.Open(map[goose.Dialect]string{goose.DialectSQLite3: "sqlite", goose.DialectPostgres: "pgx"}[dialect], openDSN(dialect, dsn))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	p2, err := goose.NewProvider(dialect, db2, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.DownTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	var counter, last int64
	if err := db2.QueryRowContext(ctx, ph(`SELECT counter, last_seen FROM devices WHERE id = ?`), "dev-b").Scan(&counter, &last); err != nil {
		t.Fatal(err)
	}
	if counter != 42 || last != nanos(seen) {
		t.Errorf("after going down: counter %d last_seen %d", counter, last)
	}
}

func openDSN(dialect goose.Dialect, dsn string) string {
	if dialect == goose.DialectSQLite3 {
		return "file:" + dsn[len("sqlite:"):] + "?_pragma=foreign_keys(ON)"
	}
	return dsn
}
