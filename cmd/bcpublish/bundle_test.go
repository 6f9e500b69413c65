package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// TestCLIBundleCreate: bundle create writes a bundle of a published
// release, and refuses what it cannot bundle in one line with the exit
// code of its kind, leaving no file (nor FILE.tmp) behind.
func TestCLIBundleCreate(t *testing.T) {
	dir := t.TempDir()
	pki := testutil.NewPKI(t)
	keys, keys2, repoDir := filepath.Join(dir, "keys"), filepath.Join(dir, "keys2"), filepath.Join(dir, "repo")
	art := filepath.Join(dir, "nc-1.0.0.tar.gz")
	os.WriteFile(art, testutil.TarGz(t, testutil.TarEntry{Name: "VERSION", Body: "1.0.0\n"}), 0o644)
	chain, leafKey := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "leaf.key")
	testutil.WriteCerts(t, chain, pki.Leaf.Chain...)
	testutil.WriteKey(t, leafKey, pki.Leaf.Key)
	for _, args := range [][]string{
		{"keys", "generate", "--out", keys},
		{"keys", "generate", "--out", keys2},
		{"init", "--repo", repoDir, "--keys", keys},
		{"codesign", "sign", "--cert", chain, "--key", leafKey, "--file", art},
		{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.0.0", "--platform", "linux-amd64", "--file", art, "--channel", "stable"},
	} {
		if code, out, errOut := bcpublish(t, args...); code != 0 {
			t.Fatalf("bcpublish %v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	base := []string{"bundle", "create", "--repo", repoDir, "--keys", keys}
	out := filepath.Join(dir, "nc.bcbundle")
	code, stdout, stderr := bcpublish(t, append(base, "--component", "notification-client", "--out", out)...)
	if code != 0 || !strings.Contains(stdout, "notification-client linux-amd64 (channel stable: 1.0.0)") {
		t.Fatalf("bundle create: exit %d\n%s%s", code, stdout, stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Fatalf("no bundle written: %v", err)
	}
	readOnly := filepath.Join(art, "sub") // a directory that cannot exist: its parent is a file
	bad := filepath.Join(dir, "bad.bcbundle")
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown component", []string{"--component", "no-such", "--out", bad}, 2, "--component no-such: the repository publishes no release of no-such"},
		{"unknown component on a platform", []string{"--component", "no-such", "--platform", "linux-amd64", "--out", bad}, 2, "channel stable names no release of no-such for linux-amd64"},
		{"version not in the repository", []string{"--component", "notification-client", "--platform", "linux-amd64", "--version", "9.9.9", "--out", bad}, 2, "no release notification-client 9.9.9 for linux-amd64"},
		{"version and channel", []string{"--component", "notification-client", "--version", "1.0.0", "--channel", "stable", "--out", bad}, 2, "--version and --channel do not go together"},
		{"window too long", []string{"--component", "notification-client", "--valid-for", "91d", "--out", bad}, 2, "--valid-for 91d: want 1h to 90d"},
		{"no component", []string{"--out", bad}, 2, "--component"},
		{"unwritable out", []string{"--component", "notification-client", "--out", filepath.Join(readOnly, "x.bcbundle")}, 1, "--out " + filepath.Join(readOnly, "x.bcbundle") + ": "},
		{"out is a directory", []string{"--component", "notification-client", "--out", dir}, 2, "is a directory"},
		{"another repository's targets key", []string{"--component", "notification-client", "--out", bad, "--keys", keys2}, 1, "targets"},
	} {
		args := append(append([]string{}, base...), c.args...)
		code, stdout, stderr := bcpublish(t, args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d naming %q", c.name, code, stderr, c.code, c.want)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%s: more than one line: %q", c.name, stderr)
		}
		for _, f := range []string{bad, bad + ".tmp", filepath.Join(readOnly, "x.bcbundle.tmp")} {
			if _, err := os.Stat(f); err == nil || !errors.Is(err, fs.ErrNotExist) && !strings.Contains(err.Error(), "not a directory") {
				t.Errorf("%s: left %s", c.name, f)
			}
		}
		_ = stdout
	}
}
