package publisher_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/s3test"
	"github.com/beckmanconnect/bcupdate/internal/storetest"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
)

func TestDirStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) publisher.Store { return &publisher.DirStore{Dir: t.TempDir()} })
}

func s3Store(t *testing.T, srv *s3test.Server) publisher.Store {
	t.Helper()
	srv.Env(t)
	bucket := srv.Bucket(t)
	s, err := publisher.OpenS3(context.Background(), "s3://"+bucket+"/repo", publisher.S3Options{Endpoint: srv.Endpoint, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3StoreGofakes3(t *testing.T) {
	srv := s3test.Fake(t)
	storetest.Run(t, func(t *testing.T) publisher.Store { return s3Store(t, srv) })
}

func TestS3StoreVersitygw(t *testing.T) {
	srv := s3test.Versity(t)
	storetest.Run(t, func(t *testing.T) publisher.Store { return s3Store(t, srv) })
}

// TestDirStoreSymlinks: no operation of the directory store follows a
// symbolic link out of the repository directory, for reading or writing;
// the error says which link, and nothing outside changes.
func TestDirStoreSymlinks(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	os.MkdirAll(filepath.Join(outside, "nc"), 0o755)
	os.WriteFile(filepath.Join(outside, "passwd"), []byte("root:x:0:0"), 0o644)
	os.WriteFile(filepath.Join(outside, "timestamp.json"), []byte("outside"), 0o644)
	dir := filepath.Join(parent, "repo")
	os.MkdirAll(filepath.Join(dir, "targets"), 0o755)
	os.MkdirAll(filepath.Join(dir, "inside"), 0o755)
	os.WriteFile(filepath.Join(dir, "inside", "ok.json"), []byte("ok"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "metadata"))                           // a whole directory
	os.Symlink("../../outside/passwd", filepath.Join(dir, "targets", "passwd"))   // a file, relative
	os.Symlink(filepath.Join(outside, "nc"), filepath.Join(dir, "targets", "nc")) // a directory, absolute
	os.Symlink("inside", filepath.Join(dir, "alias"))                             // stays inside: followed
	s := &publisher.DirStore{Dir: dir}
	before := testutil.HashTree(t, outside)

	ops := []struct {
		name string
		op   func() error
	}{
		{"Get through a linked directory", func() error { _, err := s.Get(ctx, "metadata/timestamp.json"); return err }},
		{"Get a linked file", func() error { _, err := s.Get(ctx, "targets/passwd"); return err }},
		{"Read", func() error { _, _, err := s.Read(ctx, "metadata/timestamp.json", 100); return err }},
		{"Exists", func() error { _, err := s.Exists(ctx, "targets/passwd"); return err }},
		{"List", func() error { _, err := s.List(ctx, "metadata/"); return err }},
		{"PutIfAbsent through a linked directory", func() error {
			return s.PutIfAbsent(ctx, "targets/nc/abc.nc.zip", strings.NewReader("x"), 1)
		}},
		{"PutIfAbsent into a new directory under a link", func() error {
			return s.PutIfAbsent(ctx, "metadata/sub/1.root.json", strings.NewReader("x"), 1)
		}},
		{"Swap", func() error { return s.Swap(ctx, "metadata/timestamp.json", "", []byte("evil")) }},
		{"Delete", func() error { return s.Delete(ctx, "metadata/timestamp.json") }},
	}
	for _, tc := range ops {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if !errors.Is(err, publisher.ErrOutside) || !strings.Contains(err.Error(), "symbolic link") {
				t.Fatalf("want ErrOutside naming the link, got %v", err)
			}
			if testutil.HashTree(t, outside) != before {
				t.Fatal("a file outside the repository changed")
			}
		})
	}
	// A link that stays inside is an ordinary path.
	if b, _, err := s.Read(ctx, "alias/ok.json", 100); err != nil || string(b) != "ok" {
		t.Fatalf("a link inside the repository: %q %v", b, err)
	}
}
