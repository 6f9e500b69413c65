// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb
// and pg_ctl from Debian's postgresql package (/usr/lib/postgresql/N/bin)
// in a temporary directory, on a free loopback port, as the unprivileged
// postgres user when the tests run as root (PostgreSQL refuses to run as
// root), and removed after. BCFLEET_TEST_POSTGRES=postgres://… uses a
// server of your own instead.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// EnvDSN names a PostgreSQL server to use instead of a throwaway one.
const EnvDSN = "BCFLEET_TEST_POSTGRES"

// Cluster is a running PostgreSQL server for tests.
type Cluster struct {
	// DSN reaches the cluster's "postgres" database as its superuser.
	DSN string
}

// BinDir is the newest /usr/lib/postgresql/N/bin that has initdb, or "".
func BinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	if len(dirs) == 0 {
		return ""
	}
	return filepath.Dir(dirs[0])
}

func major(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// Start starts a cluster that t's cleanup stops and removes. Without
// PostgreSQL installed the test is skipped (failed under
// BCUPDATE_REQUIRE_TOOLS=1), with a message that names `make deps`.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return &Cluster{DSN: dsn}
	}
	bin := BinDir()
	if bin == "" {
		testutil.MissingTool(t, "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb; Debian package postgresql): run `make deps`, or set "+EnvDSN)
		return nil
	}
	dir, err := os.MkdirTemp("", "bcfleet-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var asUser []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs an unprivileged user: no user postgres (%v)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		// The temporary directory's parents must let postgres through.
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(name string, args ...string) {
		t.Helper()
		argv := append(append(append([]string{}, asUser...), filepath.Join(bin, name)), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	data := filepath.Join(dir, "data")
	run("initdb", "-D", data, "-U", "bcfleet", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
	port := freePort(t)
	// Tests trade durability for speed; a benchmark keeps PostgreSQL's
	// defaults (fsync on), so that its numbers are a real server's.
	durability := "-c fsync=off -c synchronous_commit=off"
	if _, bench := t.(*testing.B); bench {
		durability = ""
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200 %s", port, dir, durability)
	run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start")
	t.Cleanup(func() {
		argv := append(append(append([]string{}, asUser...), filepath.Join(bin, "pg_ctl")), "-D", data, "-m", "immediate", "-w", "stop")
		exec.Command(argv[0], argv[1:]...).Run()
	})
	return &Cluster{DSN: fmt.Sprintf("postgres://bcfleet@127.0.0.1:%d/postgres?sslmode=disable", port)}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// NewDB creates an empty database in the cluster and returns its DSN;
// t's cleanup drops it.
func (c *Cluster) NewDB(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := make([]byte, 6)
	rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", c.DSN)
		if err == nil {
			db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			db.Close()
		}
	})
	u, err := url.Parse(c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
