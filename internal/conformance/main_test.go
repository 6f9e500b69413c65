package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// The adapter over a repository of bcupdate's own (publisher, bins): the
// protocol's three commands, their exit codes and the time taken from
// `date +%s`.
func TestAdapter(t *testing.T) {
	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys")
	if _, err := publisher.GenerateKeys(keysDir, signer.KeyTypeEd25519); err != nil {
		t.Fatal(err)
	}
	keys, err := publisher.LoadKeys(keysDir, repo.TopLevelRoles...)
	if err != nil {
		t.Fatal(err)
	}
	store := &publisher.DirStore{Dir: filepath.Join(dir, "repo")}
	if _, err := publisher.InitBins(context.Background(), store, keys, time.Now(), 4); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(publisher.Handler(store, nil))
	t.Cleanup(srv.Close)
	md, td := filepath.Join(dir, "metadata"), filepath.Join(dir, "targets")
	if err := os.Mkdir(td, 0o700); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(store.Dir, "metadata", "1.root.json")
	common := []string{"--metadata-dir", md, "--metadata-url", srv.URL + "/metadata/"}
	download := func(names ...string) []string {
		args := append([]string{}, common...)
		for _, n := range names {
			args = append(args, "--target-name", n)
		}
		return append(args, "--target-base-url", srv.URL+"/targets/", "--target-dir", td, "download")
	}

	for _, step := range []struct {
		name string
		args []string
		date string // a `date` that prints this instead of the time ("": the real one)
		want int
		says string // stderr must contain this
	}{
		{"no command", common, "", 1, ""},
		{"unknown command", append(common, "update"), "", 1, ""},
		{"init without a root", []string{"--metadata-dir", md, "init"}, "", 1, ""},
		{"init", []string{"--metadata-dir", md, "init", root}, "", 0, ""},
		{"refresh", append(common, "refresh"), "", 0, ""},
		{"refresh a year from now: timestamp expired", append(common, "refresh"), fmt.Sprint(time.Now().AddDate(1, 0, 0).Unix()), 1, "expired"},
		{"download through a bin", download(repo.DevicePolicyPath), "", 0, ""},
		{"download again (kept)", download(repo.DevicePolicyPath), "", 0, ""},
		{"a missing target stops the list", download("no/such target", repo.DevicePolicyPath), "", 1, ""},
		{"download without --target-dir", append(common, "download"), "", 1, ""},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.date != "" {
				bin := t.TempDir()
				script := "#!/bin/sh\necho " + step.date + "\n"
				if err := os.WriteFile(filepath.Join(bin, "date"), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
				t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			}
			var stderr bytes.Buffer
			if got := run(context.Background(), step.args, &stderr); got != step.want {
				t.Fatalf("exit %d, want %d; stderr: %s", got, step.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), step.says) {
				t.Fatalf("stderr %q does not say %q", stderr.String(), step.says)
			}
		})
	}
	for _, f := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		if _, err := os.Stat(filepath.Join(md, f)); err != nil {
			t.Errorf("trusted metadata: %v", err)
		}
	}
	got, err := os.ReadFile(filepath.Join(td, neturl.PathEscape(repo.DevicePolicyPath)))
	if err != nil || !bytes.Contains(got, []byte("phi_device_classes")) {
		t.Fatalf("downloaded policy: %q, %v", got, err)
	}
	if entries, _ := os.ReadDir(td); len(entries) != 1 {
		t.Fatalf("target directory holds %d files, want 1", len(entries))
	}
}
