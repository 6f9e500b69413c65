package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

func bcpublish(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"bcpublish"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	pki := testutil.NewPKI(t)
	keys, repoDir := filepath.Join(dir, "keys"), filepath.Join(dir, "repo")
	testutil.WriteCerts(t, filepath.Join(dir, "chain.pem"), pki.Leaf.Chain...)
	testutil.WriteKey(t, filepath.Join(dir, "leaf.key"), pki.Leaf.Key)
	art := filepath.Join(dir, "nc-1.0.0.tar.gz")
	os.WriteFile(art, testutil.TarGz(t, testutil.TarEntry{Name: "VERSION", Body: "1.0.0\n"}), 0o644)
	crlFile, staleCRL := filepath.Join(dir, "ca.crl"), filepath.Join(dir, "stale.crl")
	os.WriteFile(crlFile, pki.Intermediate.CRL(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)), 0o644)
	os.WriteFile(staleCRL, pki.Intermediate.CRL(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)), 0o644)
	policy, badPolicy, featureText := filepath.Join(dir, "devices.json"), filepath.Join(dir, "bad.json"), filepath.Join(dir, "ft.txt")
	os.WriteFile(policy, []byte(`{"phi_device_classes": ["Navios EX", "DxFLEx", "Navios", "DxH 900"], "version": 1}`), 0o644)
	os.WriteFile(badPolicy, []byte(`{"phi_device_classes": ["Navios", "Navios"]}`), 0o644)
	os.WriteFile(featureText, []byte("File transfer\nLets support copy files; they may hold PHI.\n"), 0o644)

	steps := []struct {
		args []string
		code int
		out  string // substring of stdout (or stderr when code != 0)
	}{
		{[]string{"keys", "generate", "--out", keys}, 0, "generated ed25519 role keys"},
		{[]string{"keys", "generate", "--out", keys}, 1, "refusing to overwrite"},
		{[]string{"init", "--repo", repoDir, "--keys", keys}, 0, "initialized repository"},
		{[]string{"init", "--repo", repoDir, "--keys", keys}, 1, "already"},
		{[]string{"codesign", "sign", "--cert", filepath.Join(dir, "chain.pem"), "--key", filepath.Join(dir, "leaf.key"), "--file", art}, 0, "signed"},
		{[]string{"codesign", "verify", "--trust", pki.TrustDir, "--file", art, "--explain"}, 0, "publisher: matched O=Example Lab Software"},
		{[]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.0.0", "--platform", "linux-amd64", "--file", art}, 0, "published notification-client/linux-amd64/1.0.0/nc-1.0.0.tar.gz"},
		{[]string{"release", "list", "--repo", repoDir}, 0, "notification-client  linux-amd64  1.0.0    stable"},
		{[]string{"release", "list", "--repo", repoDir, "--json"}, 0, `"channels": [`},
		{[]string{"status", "--repo", repoDir}, 0, "signatures verified"},
		{[]string{"policy", "set", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--file", policy}, 2, "needs the publisher's code signature too"},
		{[]string{"policy", "set", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--file", policy,
			"--codesign-cert", filepath.Join(dir, "chain.pem"), "--codesign-key", filepath.Join(dir, "leaf.key")}, 0, "version 1: 4 PHI device classes"},
		{[]string{"policy", "set", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--file", badPolicy}, 2, "listed twice"},
		{[]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.1.0", "--platform", "linux-amd64", "--file", art, "--feature", "phi-file-transfer:phi-devices"}, 2, "needs --feature-text"},
		{[]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.1.0", "--platform", "linux-amd64", "--file", art, "--feature", "phi-file-transfer:sometimes"}, 2, "want required, phi-devices or none"},
		{[]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.1.0", "--platform", "linux-amd64", "--file", art, "--feature", "phi-file-transfer:phi-devices",
			"--feature-text", "phi-file-transfer=" + featureText}, 2, "needs a code-signed gate manifest"},
		{[]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.1.0", "--platform", "linux-amd64", "--file", art, "--feature", "phi-file-transfer:phi-devices",
			"--feature-text", "phi-file-transfer=" + featureText,
			"--codesign-cert", filepath.Join(dir, "chain.pem"), "--codesign-key", filepath.Join(dir, "leaf.key")}, 0, "published notification-client/linux-amd64/1.1.0"},
		// The two-step flow for keys in an HSM: write the manifest, sign it
		// elsewhere, publish with --gate.
		{[]string{"release", "gate", "--component", "notification-client", "--version", "1.2.0", "--platform", "linux-amd64", "--file", art,
			"--feature", "phi-file-transfer:phi-devices", "--feature-text", "phi-file-transfer=" + featureText, "--out", filepath.Join(dir, "gate.json")}, 0, "wrote"},
		{[]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.2.0", "--platform", "linux-amd64", "--file", art, "--gate", filepath.Join(dir, "gate.json")}, 2, "--gate-signature"},
		{[]string{"codesign", "sign", "--cert", filepath.Join(dir, "chain.pem"), "--key", filepath.Join(dir, "leaf.key"), "--file", filepath.Join(dir, "gate.json")}, 0, "signed"},
		{[]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.3.0", "--platform", "linux-amd64", "--file", art, "--gate", filepath.Join(dir, "gate.json")}, 2, "gate manifest is for notification-client 1.2.0"},
		{[]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.2.0", "--platform", "linux-amd64", "--file", art, "--gate", filepath.Join(dir, "gate.json"),
			"--feature", "phi-file-transfer:none", "--feature-text", "phi-file-transfer=" + featureText}, 2, "differ from the code-signed gate manifest"},
		{[]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "notification-client",
			"--version", "1.2.0", "--platform", "linux-amd64", "--file", art, "--gate", filepath.Join(dir, "gate.json")}, 0, "published notification-client/linux-amd64/1.2.0"},
		{[]string{"refresh", "--repo", repoDir, "--keys", keys}, 0, "timestamp v6"},
		{[]string{"trust", "add-crl", "--repo", repoDir, "--keys", keys, "--crl", crlFile}, 0, "published trust/crl/ca.crl: 0 revoked certificates"},
		{[]string{"trust", "add-crl", "--repo", repoDir, "--keys", keys, "--crl", staleCRL}, 2, "nextUpdate"},
		// A yank shows in release list, with its reason.
		{[]string{"release", "yank", "--repo", repoDir, "--keys", keys, "--component", "notification-client", "--platform", "linux-amd64",
			"--version", "1.2.0", "--reason", "crashes on start"}, 0, "stable -> notification-client/linux-amd64/1.1.0"},
		{[]string{"release", "list", "--repo", repoDir}, 0, "nc-1.0.0.tar.gz  yes: crashes on start\n"},
		{[]string{"release", "list", "--repo", repoDir, "--json"}, 0, `"yank_reason": "crashes on start"`},
		// Usage errors: exit 2, one line naming the flag.
		{[]string{"release", "add", "--repo", repoDir}, 2, "--keys, --trust, --component, --version, --platform and --file are required"},
		{[]string{"release", "add", "--bogus"}, 2, "unknown flag --bogus for bcpublish release add"},
		{[]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--component", "Bad_Name",
			"--version", "1.0.0", "--platform", "linux-amd64", "--file", art}, 2, "--component"},
		{[]string{"nope"}, 2, "unknown command"},
		{[]string{"keys", "generate", "--out", filepath.Join(dir, "k2"), "--type", "rsa"}, 2, "--type"},
		{[]string{"status", "--repo", filepath.Join(dir, "missing")}, 1, "no repository found"},
	}
	for _, s := range steps {
		code, out, errOut := bcpublish(t, s.args...)
		where := out
		if s.code != 0 {
			where = errOut
		}
		if code != s.code || !strings.Contains(where, s.out) {
			t.Fatalf("bcpublish %v: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", s.args, code, s.code, out, errOut, s.out)
		}
		if s.code != 0 && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("bcpublish %v: error is not one line: %q", s.args, errOut)
		}
	}

	// release list --json keeps its fields and says of every release
	// whether it is yanked.
	_, out, _ := bcpublish(t, "release", "list", "--repo", repoDir, "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 3 {
		t.Fatalf("release list --json: %v\n%s", err, out)
	}
	for _, r := range list {
		yanked := r["version"] == "1.2.0"
		if r["yanked"] != yanked || (r["yank_reason"] == "crashes on start") != yanked || r["path"] == nil || r["channels"] == nil {
			t.Errorf("release list --json: %v", r)
		}
	}
	_, out, _ = bcpublish(t, "release", "list", "--repo", repoDir)
	if lines := strings.Split(out, "\n"); !strings.HasSuffix(lines[0], "  YANKED") || !strings.HasSuffix(strings.TrimSpace(lines[1]), "-") {
		t.Errorf("release list:\n%s", out)
	}

	// A tampered artifact is refused with exit code 3.
	os.WriteFile(art, []byte("tampered"), 0o644)
	code, _, errOut := bcpublish(t, "release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir,
		"--component", "notification-client", "--version", "1.0.1", "--platform", "linux-amd64", "--file", art)
	if code != 3 || !strings.Contains(errOut, "content does not match the signature") {
		t.Fatalf("tampered artifact: exit %d, %s", code, errOut)
	}
}

func TestCLIRootAndExpiry(t *testing.T) {
	dir := t.TempDir()
	keys, keys2, repoDir, staged := filepath.Join(dir, "keys"), filepath.Join(dir, "keys2"), filepath.Join(dir, "repo"), filepath.Join(dir, "root.json")
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"keys", "generate", "--out", keys}, 0, "generated"},
		{[]string{"keys", "generate", "--out", keys2}, 0, "generated"},
		{[]string{"init", "--repo", repoDir, "--keys", keys}, 0, "initialized"},
		{[]string{"root", "stage", "--repo", repoDir, "--out", staged}, 2, "--role is required"},
		{[]string{"root", "stage", "--repo", repoDir, "--role", "timestamp", "--out", staged}, 2, "nothing to change"},
		{[]string{"root", "stage", "--repo", repoDir, "--role", "timestamp", "--add-key", filepath.Join(keys2, "timestamp.pub"),
			"--remove-key", filepath.Join(keys, "timestamp.pub"), "--out", staged}, 0, "staged root v2"},
		{[]string{"root", "publish", "--repo", repoDir, "--keys", keys, staged}, 3, "0 of 1 signatures required by the current root (v1)"},
		{[]string{"root", "sign", "--key", filepath.Join(keys, "root.key"), staged}, 0, "(1 signatures)"},
		{[]string{"root", "publish", "--repo", repoDir, "--keys", keys, staged}, 1, "timestamp key given is not one of the repository root's timestamp keys"},
		{[]string{"root", "publish", "--repo", repoDir, "--keys", keys, "--timestamp-key", filepath.Join(keys2, "timestamp.key"), staged}, 0, "published root v2"},
		{[]string{"refresh", "--repo", repoDir, "--keys", keys, "--timestamp-key", "file://" + filepath.Join(keys2, "timestamp.key")}, 0, "refreshed"},
		{[]string{"refresh", "--repo", repoDir, "--keys", keys}, 1, "not one of the repository root's timestamp keys"},
		{[]string{"status", "--repo", repoDir, "--check"}, 0, "signatures verified"},
		{[]string{"status", "--repo", repoDir, "--check", "--warn-within", "400d"}, 1, "root v2 expires in"},
		{[]string{"status", "--repo", repoDir, "--check", "--warn-within", "soon"}, 2, "--warn-within"},
		{[]string{"root", "rotate", "--repo", repoDir, "--keys", keys, "--extend"}, 0, "published root v3"},
	}
	for _, s := range steps {
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
