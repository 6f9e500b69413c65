package sqlstore_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/sqlstore"
	"github.com/beckmanconnect/bcupdate/fleet/storetest"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/fleettest"
	"github.com/beckmanconnect/bcupdate/internal/pgtest"
)

func openSQLite(t *testing.T) (*sqlstore.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.db")
	st, err := sqlstore.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) fleet.Store {
		st, _ := openSQLite(t)
		return st
	})
}

func TestPostgres(t *testing.T) {
	c := pgtest.Start(t)
	if c == nil {
		return
	}
	storetest.Run(t, func(t *testing.T) fleet.Store {
		st, err := sqlstore.Open(context.Background(), c.NewDB(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
	t.Run("ConcurrentOpen", func(t *testing.T) {
		// Servers starting together migrate once; all of them open.
		dsn := c.NewDB(t)
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				st, err := sqlstore.Open(context.Background(), dsn)
				if err == nil {
					st.Close()
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("NoPlaintext", func(t *testing.T) {
		dsn := c.NewDB(t)
		st, err := sqlstore.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		enrollOne(t, st)
		dump, err := exec.Command(filepath.Join(pgtest.BinDir(), "pg_dump"), "--data-only", dsn).CombinedOutput()
		if os.Getenv(pgtest.EnvDSN) != "" && err != nil {
			t.Skipf("pg_dump against %s: %v", pgtest.EnvDSN, err)
		}
		if err != nil {
			t.Fatalf("pg_dump: %v\n%s", err, dump)
		}
		checkNoPlaintext(t, dump)
	})
}

// The enrollee, personal data. (Consent names never reach the service:
// a report carries only the consent log's head.)
const (
	email = "ann.lee@hospital.example"
	name  = "Ann Lee-Whitfield"
)

// enrollOne enrolls a device through the real service and sends a full
// report, so that everything the service stores about it is there.
func enrollOne(t *testing.T, st fleet.Store) {
	t.Helper()
	dir := t.TempDir()
	if err := fleet.GenerateKEK(filepath.Join(dir, "kek")); err != nil {
		t.Fatal(err)
	}
	kek, err := fleet.OpenKEK(filepath.Join(dir, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	enrollWith(t, st, kek)
}

// enrollWith is enrollOne under the KEK given.
func enrollWith(t *testing.T, st fleet.Store, kek fleet.KEK) {
	t.Helper()
	ctx := context.Background()
	srv := httptest.NewServer((&fleet.Server{Store: st, KEK: kek}).Handler())
	defer srv.Close()
	secret, _, err := fleet.CreateToken(ctx, st, "operator:test", "lab-1", time.Hour, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := json.Marshal(wire.EnrollRequest{Token: secret, PublicKey: pub, Enrollee: wire.Enrollee{Email: email, Name: name},
		Instrument: wire.Instrument{Model: "Navios EX", ID: "INST-4711", Serial: "SN-4711"}, AgentVersion: "1.0.0", Time: time.Now()})
	resp := send(t, srv.URL+wire.EnrollPath, body, map[string]string{wire.SignatureHeader: wire.SignEnroll(priv, body)})
	var er wire.EnrollResponse
	json.Unmarshal(resp, &er)
	rep, _ := json.Marshal(wire.Report{DeviceID: er.DeviceID, Counter: 1, Time: time.Now(), Digest: "d", PollInterval: "1m",
		Components: []wire.Component{{Name: "notification-client", Installed: "1.0.0", Channel: "stable", State: "up-to-date",
			ActiveFeatures: []string{"file-transfer"}}},
		Consent: &wire.LogHead{Seq: 1, Hash: "c"}})
	send(t, srv.URL+wire.ReportPath, rep, map[string]string{wire.DeviceHeader: er.DeviceID, wire.SignatureHeader: wire.SignReport(priv, rep)})
	// An operator's look at the enrollee: it is in the access log, the
	// enrollee is not.
	if _, err := fleet.ShowDevice(ctx, st, kek, "operator:test", er.DeviceID, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func send(t *testing.T, url string, body []byte, h map[string]string) []byte {
	t.Helper()
	code, b := fleettest.Post(t, url, body, h)
	if code != 200 {
		t.Fatalf("%s: %d %s", url, code, b)
	}
	return b
}

func checkNoPlaintext(t *testing.T, dump []byte) {
	t.Helper()
	if !bytes.Contains(dump, []byte("INST-4711")) {
		t.Fatal("the dump does not hold the device at all (is this the right database?)")
	}
	low := bytes.ToLower(dump)
	for _, s := range []string{email, "ann.lee", "hospital.example", name, "whitfield"} {
		if bytes.Contains(low, []byte(strings.ToLower(s))) {
			t.Errorf("the database holds %q in plaintext", s)
		}
	}
}

// A dump of the SQLite file (and its write-ahead log) has no personal
// data in plaintext, and only its owner can read it.
func TestSQLiteNoPlaintext(t *testing.T) {
	st, path := openSQLite(t)
	enrollOne(t, st)
	var dump []byte
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		dump = append(dump, b...)
	}
	checkNoPlaintext(t, dump)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the database file's mode: %v %v, want 0600", fi.Mode(), err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct{ dsn, want string }{
		{"mysql://x", `--db "mysql://x": want sqlite:PATH or postgres://`},
		{"fleet.db", `--db "fleet.db": want sqlite:PATH`},
		{"sqlite:", "the path is empty"},
		{"sqlite:" + filepath.Join(dir, "no", "fleet.db"), "does not exist"},
		{"postgres://u:secret@127.0.0.1:1/db?connect_timeout=2", "cannot reach PostgreSQL"},
	} {
		_, err := sqlstore.Open(ctx, tc.dsn)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q): %v, want %q (and no password)", tc.dsn, err, tc.want)
		}
	}
	// Opening again keeps what is there and migrates nothing twice.
	path := filepath.Join(dir, "fleet.db")
	st, err := sqlstore.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateToken(ctx, fleet.Token{ID: "tok-1", Site: "s", Hash: []byte("h"), Created: time.Now(), Expires: time.Now().Add(time.Hour), Uses: 1}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = sqlstore.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ts, err := st.Tokens(ctx); err != nil || len(ts) != 1 {
		t.Fatalf("after reopening: %v %v", ts, err)
	}
	if v, err := st.SchemaVersion(ctx); err != nil || v != 7 {
		t.Fatalf("schema version %d %v", v, err)
	}
}
