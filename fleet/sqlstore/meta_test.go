package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/sqlstore"
	"github.com/beckmanconnect/bcupdate/internal/kmstest"
	"github.com/beckmanconnect/bcupdate/internal/pgtest"
)

// metaSuite checks a MetaStore: a value is set once and never replaced,
// and stores opened on one database at once agree on it.
func metaSuite(t *testing.T, open func(t *testing.T) *sqlstore.Store) {
	ctx := context.Background()
	st := open(t)
	if _, err := st.Meta(ctx, "k"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("an unset name: %v, want ErrNotFound", err)
	}
	if v, err := st.PutMetaOnce(ctx, "k", []byte("first")); err != nil || string(v) != "first" {
		t.Fatalf("put: %q %v", v, err)
	}
	if v, err := st.PutMetaOnce(ctx, "k", []byte("second")); err != nil || string(v) != "first" {
		t.Fatalf("put again: %q %v, want the first value kept", v, err)
	}
	if v, err := st.Meta(ctx, "k"); err != nil || string(v) != "first" {
		t.Fatalf("get: %q %v", v, err)
	}
	// Stores on one database putting at once: one value wins, all see it.
	stores := []*sqlstore.Store{st, open(t), open(t), open(t)}
	got := make([][]byte, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			v, err := s.PutMetaOnce(ctx, "race", []byte{byte(i)})
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for i := range got {
		if len(got[i]) != 1 || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("stores putting at once disagree: %v", got)
		}
	}
}

func TestMetaSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	metaSuite(t, func(t *testing.T) *sqlstore.Store {
		st, err := sqlstore.Open(context.Background(), "sqlite:"+path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

func TestMetaPostgres(t *testing.T) {
	c := pgtest.Start(t)
	if c == nil {
		return
	}
	dsn := c.NewDB(t)
	metaSuite(t, func(t *testing.T) *sqlstore.Store {
		st, err := sqlstore.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// kmsKEK opens the KMS KEK uri on st, as bcfleet serve does.
func kmsKEK(t *testing.T, uri string, st fleet.Store) fleet.KEK {
	t.Helper()
	k, err := fleet.OpenKEKWithStore(context.Background(), uri, st)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkKMSDump: no personal data and no lookup key in plaintext, and the
// device is found by its enrollee's email with a KEK opened anew.
func checkKMSDump(t *testing.T, dump []byte, st fleet.Store, kek, again fleet.KEK) {
	t.Helper()
	checkNoPlaintext(t, dump)
	if bytes.Contains(dump, kek.IndexKey()) {
		t.Error("the database holds the email-lookup key in plaintext")
	}
	ds, err := st.Devices(context.Background(), fleet.DeviceFilter{EmailHash: fleet.EmailHash(again, email)})
	if err != nil || len(ds) != 1 {
		t.Fatalf("found by email with the KEK opened again: %d devices, %v", len(ds), err)
	}
}

// With an AWS KMS KEK (a real local-kms) the SQLite file holds no
// personal data and no lookup key in plaintext, and a restart (the KEK
// opened again) finds devices by email as before.
func TestSQLiteNoPlaintextKMS(t *testing.T) {
	srv := kmstest.Start(t)
	kmstest.Env(t)
	uri := srv.URI(srv.Key(t))
	st, path := openSQLite(t)
	kek := kmsKEK(t, uri, st)
	enrollWith(t, st, kek)
	var dump []byte
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		dump = append(dump, b...)
	}
	checkKMSDump(t, dump, st, kek, kmsKEK(t, uri, st))
}

// Several bcfleet serve processes on one PostgreSQL, starting at once
// with a KMS KEK, agree on one lookup key; pg_dump shows no personal data
// and no lookup key.
func TestPostgresNoPlaintextKMS(t *testing.T) {
	srv := kmstest.Start(t)
	if srv == nil {
		return
	}
	c := pgtest.Start(t)
	if c == nil {
		return
	}
	kmstest.Env(t)
	uri := srv.URI(srv.Key(t))
	dsn := c.NewDB(t)
	keks := make([]fleet.KEK, 3)
	stores := make([]*sqlstore.Store, 3)
	var wg sync.WaitGroup
	for i := range keks {
		wg.Go(func() {
			st, err := sqlstore.Open(context.Background(), dsn)
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { st.Close() })
			k, err := fleet.OpenKEKWithStore(context.Background(), uri, st)
			if err != nil {
				t.Error(err)
				return
			}
			stores[i], keks[i] = st, k
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, k := range keks[1:] {
		if !bytes.Equal(k.IndexKey(), keks[0].IndexKey()) {
			t.Fatal("servers starting at once on one database made different lookup keys")
		}
	}
	enrollWith(t, stores[0], keks[0])
	dump, err := exec.Command(filepath.Join(pgtest.BinDir(), "pg_dump"), "--data-only", dsn).CombinedOutput()
	if os.Getenv(pgtest.EnvDSN) != "" && err != nil {
		t.Skipf("pg_dump against %s: %v", pgtest.EnvDSN, err)
	}
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, dump)
	}
	checkKMSDump(t, dump, stores[1], keks[0], kmsKEK(t, uri, stores[2]))
}
