//go:build !windows

// FIFOs and /dev/zero are Unix things: this file is Unix-only.

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// TestCLIBadInputFiles: a flag that names a device, a FIFO, an oversized
// file or an archive the agents would refuse is exit 2 at once, one line
// naming the flag and the file, and the repository is left as it was.
func TestCLIBadInputFiles(t *testing.T) {
	dir := t.TempDir()
	pki := testutil.NewPKI(t)
	keys, repoDir := filepath.Join(dir, "keys"), filepath.Join(dir, "repo")
	testutil.WriteCerts(t, filepath.Join(dir, "chain.pem"), pki.Leaf.Chain...)
	testutil.WriteKey(t, filepath.Join(dir, "leaf.key"), pki.Leaf.Key)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	art := filepath.Join(dir, "nc-1.2.0.tar.gz")
	os.WriteFile(art, testutil.TarGz(t, testutil.TarEntry{Name: "VERSION", Body: "1.2.0\n"}), 0o644)
	empty := filepath.Join(dir, "empty", "nc-1.2.0.tar.gz")
	os.MkdirAll(filepath.Dir(empty), 0o755)
	os.WriteFile(empty, nil, 0o644)
	escaping := filepath.Join(dir, "escaping", "nc-1.2.0.tar.gz")
	os.MkdirAll(filepath.Dir(escaping), 0o755)
	os.WriteFile(escaping, testutil.TarGz(t, testutil.TarEntry{Name: "../../etc/cron.d/x", Body: "x"}), 0o644)
	text := filepath.Join(dir, "text")
	os.WriteFile(text, []byte("Title\nDescription.\n"), 0o644)
	for _, args := range [][]string{
		{"keys", "generate", "--out", keys},
		{"init", "--repo", repoDir, "--keys", keys},
		{"codesign", "sign", "--cert", filepath.Join(dir, "chain.pem"), "--key", filepath.Join(dir, "leaf.key"), "--file", art},
		{"codesign", "sign", "--cert", filepath.Join(dir, "chain.pem"), "--key", filepath.Join(dir, "leaf.key"), "--file", empty},
		{"codesign", "sign", "--cert", filepath.Join(dir, "chain.pem"), "--key", filepath.Join(dir, "leaf.key"), "--file", escaping},
	} {
		if code, out, errOut := bcpublish(t, args...); code != 0 {
			t.Fatalf("bcpublish %v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	add := func(file string, more ...string) []string {
		return append([]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir,
			"--component", "nc", "--version", "1.2.0", "--platform", "linux-amd64", "--file", file}, more...)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"signature /dev/zero", add(art, "--signature", "/dev/zero"), "--signature /dev/zero: not a regular file (a character device)"},
		{"signature FIFO", add(art, "--signature", fifo), "--signature " + fifo + ": not a regular file (a FIFO)"},
		{"feature text /dev/zero", add(art, "--feature", "f", "--feature-text", "f=/dev/zero"), "--feature-text f=/dev/zero: not a regular file"},
		{"feature text FIFO", add(art, "--feature", "f", "--feature-text", "f="+fifo), "--feature-text f=" + fifo + ": not a regular file (a FIFO)"},
		{"gate FIFO", add(art, "--gate", fifo), "--gate " + fifo + ": not a regular file"},
		{"codesign cert /dev/zero", add(art, "--feature", "f", "--feature-text", "f="+text, "--codesign-cert", "/dev/zero", "--codesign-key", filepath.Join(dir, "leaf.key")), "--codesign-cert: /dev/zero: not a regular file"},
		{"empty archive", add(empty), "--file " + empty + ": not a valid .tar.gz: unexpected EOF; agents would refuse it"},
		{"escaping archive", add(escaping), `--file ` + escaping + `: archive entry "../../etc/cron.d/x": contains ..; agents would refuse it`},
		{"targets key FIFO", append(add(art), "--targets-key", fifo), fifo + ": not a regular file"},
		{"policy file /dev/zero", []string{"policy", "set", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--file", "/dev/zero"}, "--file /dev/zero: not a regular file"},
		{"crl FIFO", []string{"trust", "add-crl", "--repo", repoDir, "--keys", keys, "--crl", fifo}, "--crl " + fifo + ": not a regular file"},
		{"codesign verify signature /dev/zero", []string{"codesign", "verify", "--trust", pki.TrustDir, "--file", art, "--signature", "/dev/zero"}, "--signature /dev/zero: not a regular file"},
		{"root sign FIFO", []string{"root", "sign", "--key", filepath.Join(keys, "root.key"), fifo}, fifo + ": not a regular file"},
		{"root stage add-key /dev/zero", []string{"root", "stage", "--repo", repoDir, "--role", "targets", "--add-key", "/dev/zero", "--out", filepath.Join(dir, "staged.json")}, "--add-key: key /dev/zero: not a regular file"},
		{"serve tls-cert /dev/zero", []string{"serve", "--repo", repoDir, "--addr", "127.0.0.1:0", "--tls-cert", "/dev/zero", "--tls-key", fifo}, "--tls-cert /dev/zero: not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.HashTree(t, repoDir)
			type result struct {
				code        int
				out, errOut string
			}
			done := make(chan result, 1)
			go func() {
				code, out, errOut := bcpublish(t, tc.args...)
				done <- result{code, out, errOut}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("bcpublish blocked on a device or FIFO")
			}
			if r.code != 2 || !strings.Contains(r.errOut, tc.want) || strings.Count(strings.TrimSpace(r.errOut), "\n") != 0 {
				t.Fatalf("exit %d (want 2)\nstdout: %s\nstderr: %s\nwant %q", r.code, r.out, r.errOut, tc.want)
			}
			if testutil.HashTree(t, repoDir) != before {
				t.Fatal("the refused command changed the repository")
			}
		})
	}
}

// TestCLIRotateTargetsWithBins: `root rotate --role targets` on a
// repository with hashed bins re-signs targets.json and every bin with the
// new key; status verifies it and a release publishes with the new key.
func TestCLIRotateTargetsWithBins(t *testing.T) {
	dir := t.TempDir()
	pki := testutil.NewPKI(t)
	keys, keys2, keys3, repoDir := filepath.Join(dir, "keys"), filepath.Join(dir, "keys2"), filepath.Join(dir, "keys3"), filepath.Join(dir, "repo")
	staged := filepath.Join(dir, "root3.json")
	testutil.WriteCerts(t, filepath.Join(dir, "chain.pem"), pki.Leaf.Chain...)
	testutil.WriteKey(t, filepath.Join(dir, "leaf.key"), pki.Leaf.Key)
	art := func(v string) string {
		p := filepath.Join(dir, v, "nc-"+v+".tar.gz")
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, testutil.TarGz(t, testutil.TarEntry{Name: "VERSION", Body: v + "\n"}), 0o644)
		if code, out, errOut := bcpublish(t, "codesign", "sign", "--cert", filepath.Join(dir, "chain.pem"), "--key", filepath.Join(dir, "leaf.key"), "--file", p); code != 0 {
			t.Fatalf("codesign sign: %d %s %s", code, out, errOut)
		}
		return p
	}
	add := func(v string, more ...string) []string {
		return append([]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir,
			"--component", "nc", "--version", v, "--platform", "linux-amd64", "--file", art(v)}, more...)
	}
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"keys", "generate", "--out", keys}, 0, "generated"},
		{[]string{"keys", "generate", "--out", keys2}, 0, "generated"},
		{[]string{"init", "--repo", repoDir, "--keys", keys, "--bins", "4"}, 0, "initialized"},
		{add("1.0.0"), 0, "published"},
		{[]string{"root", "rotate", "--repo", repoDir, "--keys", keys, "--role", "targets", "--add-key", filepath.Join(keys2, "targets.pub"),
			"--remove-key", filepath.Join(keys, "targets.pub"), "--targets-key", filepath.Join(keys2, "targets.key")}, 0, "published root v2"},
		{[]string{"status", "--repo", repoDir, "--check"}, 0, "signatures verified"},
		{add("1.1.0"), 1, "targets key given is not"},
		{add("1.1.0", "--targets-key", filepath.Join(keys2, "targets.key")), 0, "published"},
		{[]string{"release", "list", "--repo", repoDir}, 0, "1.1.0"},
		// A repository an older bcpublish left half-rotated (the root
		// published, nothing re-signed) is refused with a hint, and
		// refresh --targets with the new key repairs it.
		{[]string{"keys", "generate", "--out", keys3}, 0, "generated"},
		{[]string{"root", "stage", "--repo", repoDir, "--role", "targets", "--add-key", filepath.Join(keys3, "targets.pub"),
			"--remove-key", filepath.Join(keys2, "targets.pub"), "--out", staged}, 0, "staged root v3"},
		{[]string{"root", "sign", "--key", filepath.Join(keys, "root.key"), staged}, 0, "signed"},
		{[]string{"cp", staged, filepath.Join(repoDir, "metadata", "3.root.json")}, 0, ""},
		{[]string{"status", "--repo", repoDir}, 3, "repair it with bcpublish refresh --targets"},
		{[]string{"refresh", "--repo", repoDir, "--keys", keys, "--targets", "--targets-key", filepath.Join(keys2, "targets.key")}, 1, "targets key given is not"},
		{[]string{"refresh", "--repo", repoDir, "--keys", keys, "--targets", "--targets-key", filepath.Join(keys3, "targets.key")}, 0, "refreshed"},
		{[]string{"status", "--repo", repoDir, "--check"}, 0, "signatures verified"},
		{add("1.2.0", "--targets-key", filepath.Join(keys3, "targets.key")), 0, "published"},
	}
	for _, s := range steps {
		if s.args[0] == "cp" {
			data, err := os.ReadFile(s.args[1])
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(s.args[2], data, 0o644)
			continue
		}
		code, out, errOut := bcpublish(t, s.args...)
		where := out
		if s.code != 0 {
			where = errOut
		}
		if code != s.code || !strings.Contains(where, s.out) {
			t.Fatalf("bcpublish %v: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", s.args, code, s.code, out, errOut, s.out)
		}
	}
}
