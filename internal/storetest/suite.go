// Package storetest is the one test suite every publisher.Store backend
// must pass (the restic pattern): directory, gofakes3 and a real
// S3-compatible server.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/beckmanconnect/bcupdate/publisher"
)

// Run runs the suite; newStore returns an empty store for each test.
func Run(t *testing.T, newStore func(t *testing.T) publisher.Store) {
	ctx := context.Background()
	put := func(t *testing.T, s publisher.Store, name, body string) error {
		return s.PutIfAbsent(ctx, name, strings.NewReader(body), int64(len(body)))
	}
	get := func(t *testing.T, s publisher.Store, name string) string {
		t.Helper()
		rc, err := s.Get(ctx, name)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}

	t.Run("missing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "metadata/timestamp.json"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Get: %v", err)
		}
		if _, _, err := s.Read(ctx, "metadata/timestamp.json", 100); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Read: %v", err)
		}
		if ok, err := s.Exists(ctx, "metadata/timestamp.json"); ok || err != nil {
			t.Fatalf("Exists: %v %v", ok, err)
		}
		if names, err := s.List(ctx, "metadata/"); err != nil || len(names) != 0 {
			t.Fatalf("List: %v %v", names, err)
		}
	})

	t.Run("put if absent", func(t *testing.T) {
		s := newStore(t)
		if err := put(t, s, "targets/nc/abc.nc.zip", "first"); err != nil {
			t.Fatal(err)
		}
		if err := put(t, s, "targets/nc/abc.nc.zip", "second"); !errors.Is(err, publisher.ErrExists) {
			t.Fatalf("second put: want ErrExists, got %v", err)
		}
		if got := get(t, s, "targets/nc/abc.nc.zip"); got != "first" {
			t.Fatalf("an immutable object changed: %q", got)
		}
		if ok, err := s.Exists(ctx, "targets/nc/abc.nc.zip"); !ok || err != nil {
			t.Fatalf("Exists: %v %v", ok, err)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		if err := s.PutIfAbsent(ctx, "targets/big.bin", bytes.NewReader(big), int64(len(big))); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, "targets/big.bin"); got != string(big) {
			t.Fatal("a 1 MiB object came back different")
		}
	})

	t.Run("put if absent takes exactly size bytes", func(t *testing.T) {
		s := newStore(t)
		for _, tc := range []struct {
			name, body string
			size       int64
		}{
			{"targets/short.bin", "cut short", 100},
			{"targets/long.bin", "longer than it says", 6},
		} {
			if err := s.PutIfAbsent(ctx, tc.name, strings.NewReader(tc.body), tc.size); err == nil || errors.Is(err, publisher.ErrExists) {
				t.Fatalf("%s: a %d-byte body put as %d bytes: %v", tc.name, len(tc.body), tc.size, err)
			}
			if ok, err := s.Exists(ctx, tc.name); ok || err != nil {
				t.Fatalf("%s: a refused put left an object: %v %v", tc.name, ok, err)
			}
			// The name is still free for the right bytes.
			if err := put(t, s, tc.name, tc.body); err != nil {
				t.Fatal(err)
			}
			if got := get(t, s, tc.name); got != tc.body {
				t.Fatalf("%s: %q", tc.name, got)
			}
		}
	})

	t.Run("swap", func(t *testing.T) {
		s := newStore(t)
		const n = "metadata/timestamp.json"
		if err := s.Swap(ctx, n, "", []byte("v1")); err != nil {
			t.Fatalf("create: %v", err)
		}
		if err := s.Swap(ctx, n, "", []byte("v1b")); !errors.Is(err, publisher.ErrChanged) {
			t.Fatalf("create over an existing object: want ErrChanged, got %v", err)
		}
		data, tag, err := s.Read(ctx, n, 100)
		if err != nil || string(data) != "v1" || tag == "" {
			t.Fatalf("Read: %q %q %v", data, tag, err)
		}
		if err := s.Swap(ctx, n, tag, []byte("v2")); err != nil {
			t.Fatalf("swap with the current tag: %v", err)
		}
		if err := s.Swap(ctx, n, tag, []byte("v3")); !errors.Is(err, publisher.ErrChanged) {
			t.Fatalf("swap with a stale tag: want ErrChanged, got %v", err)
		}
		if got := get(t, s, n); got != "v2" {
			t.Fatalf("content %q", got)
		}
		if _, _, err := s.Read(ctx, n, 1); err == nil {
			t.Fatal("Read ignored its limit")
		}
	})

	t.Run("list and delete", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []string{"metadata/2.root.json", "metadata/1.root.json", "targets/a/b.zip", "metadata/timestamp.json"} {
			if err := put(t, s, n, n); err != nil {
				t.Fatal(err)
			}
		}
		names, err := s.List(ctx, "metadata/")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(names, " "); got != "metadata/1.root.json metadata/2.root.json metadata/timestamp.json" {
			t.Fatalf("List: %s", got)
		}
		if err := s.Delete(ctx, "metadata/2.root.json"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.Exists(ctx, "metadata/2.root.json"); ok {
			t.Fatal("deleted object still there")
		}
		if err := s.Delete(ctx, "metadata/nothing.json"); err != nil {
			t.Fatalf("deleting a missing object: %v", err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		s := newStore(t)
		const n = "metadata/timestamp.json"
		if err := s.Swap(ctx, n, "", []byte("start")); err != nil {
			t.Fatal(err)
		}
		_, tag, err := s.Read(ctx, n, 100)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		swaps, puts := 0, 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if s.Swap(ctx, n, tag, []byte(fmt.Sprintf("writer %d", i))) == nil {
					mu.Lock()
					swaps++
					mu.Unlock()
				}
				body := fmt.Sprintf("publisher %d", i)
				if s.PutIfAbsent(ctx, "metadata/7.targets.json", strings.NewReader(body), int64(len(body))) == nil {
					mu.Lock()
					puts++
					mu.Unlock()
				}
			}(i)
		}
		wg.Wait()
		if swaps != 1 || puts != 1 {
			t.Fatalf("8 racing writers: %d swaps and %d creates won, want exactly 1 each", swaps, puts)
		}
	})
}
