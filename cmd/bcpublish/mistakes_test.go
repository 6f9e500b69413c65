package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// TestCLICommonMistakes: the mistakes a release engineer makes most (a
// version with a "v", a TUF role key given to code signing, the key
// directory of another repository, a key of another role, a file of the
// wrong kind, a server that is not there) are answered in one line in our
// words, saying what to give or check, with the exit code of their kind;
// no library's own message (go-tuf, pkcs7, asn1, the AWS SDK) is shown.
func TestCLICommonMistakes(t *testing.T) {
	dir := t.TempDir()
	pki := testutil.NewPKI(t)
	keys, keys2, ecKeys := filepath.Join(dir, "keys"), filepath.Join(dir, "keys2"), filepath.Join(dir, "ec-keys")
	repoDir, tampered := filepath.Join(dir, "repo"), filepath.Join(dir, "tampered")
	chain, leafKey, chainAsKey := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "leaf.key"), filepath.Join(dir, "chain-as-key.pem")
	testutil.WriteCerts(t, chain, pki.Leaf.Chain...)
	testutil.WriteCerts(t, chainAsKey, pki.Leaf.Chain...)
	os.Chmod(chainAsKey, 0o600)
	testutil.WriteKey(t, leafKey, pki.Leaf.Key)
	rsaKey := filepath.Join(dir, "rsa.key")
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WriteKey(t, rsaKey, rk)
	art := filepath.Join(dir, "nc-1.0.0.tar.gz")
	os.WriteFile(art, testutil.TarGz(t, testutil.TarEntry{Name: "VERSION", Body: "1.0.0\n"}), 0o644)
	policy := filepath.Join(dir, "devices.json")
	os.WriteFile(policy, []byte(`{"phi_device_classes": ["Navios EX"], "version": 2}`), 0o644)
	staged := filepath.Join(dir, "root2.json")
	for _, args := range [][]string{
		{"keys", "generate", "--out", keys},
		{"keys", "generate", "--out", keys2},
		{"keys", "generate", "--out", ecKeys, "--type", "ecdsa-p256"},
		{"init", "--repo", repoDir, "--keys", keys},
		{"init", "--repo", tampered, "--keys", keys},
		{"codesign", "sign", "--cert", chain, "--key", leafKey, "--file", art},
		{"root", "stage", "--repo", repoDir, "--role", "timestamp", "--add-key", filepath.Join(keys2, "timestamp.pub"), "--out", staged},
	} {
		if code, out, errOut := bcpublish(t, args...); code != 0 {
			t.Fatalf("bcpublish %v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	// A timestamp.json changed by hand no longer verifies.
	tsFile := filepath.Join(tampered, "metadata", "timestamp.json")
	var ts map[string]any
	data, _ := os.ReadFile(tsFile)
	if err := json.Unmarshal(data, &ts); err != nil {
		t.Fatal(err)
	}
	ts["signed"].(map[string]any)["expires"] = "2099-01-01T00:00:00Z"
	data, _ = json.Marshal(ts)
	os.WriteFile(tsFile, data, 0o644)
	// A port another server holds.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A port nothing listens on.
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := gone.Addr().String()
	gone.Close()
	// S3 with credentials that look fine, and without any.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")

	add := func(version string, more ...string) []string {
		return append([]string{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir,
			"--component", "nc", "--version", version, "--platform", "linux-amd64", "--file", art}, more...)
	}
	sign := func(cert, key string) []string {
		return []string{"codesign", "sign", "--cert", cert, "--key", key, "--file", art, "--out", filepath.Join(dir, "out.p7s")}
	}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string // each in the one line on stderr
	}{
		// Versions.
		{"version with a v", nil, add("v1.3.0"), 2,
			[]string{`bcpublish: --version "v1.3.0" is not a semantic version: write it without the "v", as 1.3.0` + "\n"}},
		{"version with two numbers", nil, add("1.3"), 2,
			[]string{`--version "1.3" is not a semantic version: it has two numbers, not three; write MAJOR.MINOR.PATCH[-PRE], such as 1.3.0`}},
		{"version with a leading zero", nil, add("01.2.3"), 2, []string{`--version "01.2.3"`, "no leading zeros; write 1.2.3"}},
		{"version with a word", nil, add("1.2.x"), 2, []string{`"x" is not a number; write MAJOR.MINOR.PATCH[-PRE], such as 1.2.0`}},
		{"yank of a v version", nil, []string{"release", "yank", "--repo", repoDir, "--keys", keys, "--component", "nc", "--platform", "linux-amd64",
			"--version", "v1.0.0", "--reason", "x"}, 2, []string{`--version "v1.0.0" is not a semantic version: write it without the "v", as 1.0.0`}},
		{"delta from a v version", nil, add("1.0.0", "--delta-from", "v0.9.0"), 2, []string{`--delta-from "v0.9.0" is not a semantic version`}},
		{"gate of a v version", nil, []string{"release", "gate", "--component", "nc", "--version", "v1.0.0", "--platform", "linux-amd64",
			"--file", art, "--out", filepath.Join(dir, "gate.json")}, 2, []string{`--version "v1.0.0" is not a semantic version`}},

		// Code signing with the wrong key or file.
		{"TUF role key to codesign sign", nil, sign(chain, filepath.Join(keys, "targets.key")), 2,
			[]string{"bcpublish: --key " + filepath.Join(keys, "targets.key") + " is an Ed25519 key, such as a TUF role key; code signing needs the RSA or ECDSA private key of the leaf certificate in --cert " + chain + "\n"}},
		{"ECDSA role key to codesign sign", nil, sign(chain, filepath.Join(ecKeys, "targets.key")), 2,
			[]string{"--key " + filepath.Join(ecKeys, "targets.key") + " (an ECDSA P-256 key) is not the key of the leaf certificate in --cert " + chain, "give the private key that certificate was issued for"}},
		{"TUF role key as --codesign-key", nil, []string{"policy", "set", "--repo", repoDir, "--keys", keys, "--trust", pki.TrustDir, "--file", policy,
			"--codesign-cert", chain, "--codesign-key", filepath.Join(keys, "targets.key")}, 2,
			[]string{"--codesign-key " + filepath.Join(keys, "targets.key") + " is an Ed25519 key", "--codesign-cert " + chain}},
		{"role public key as --cert", nil, sign(filepath.Join(keys, "targets.pub"), leafKey), 2,
			[]string{"--cert: " + filepath.Join(keys, "targets.pub") + " holds a public key, such as a TUF role key's .pub, not a certificate; give the PEM certificate (chain) file"}},
		{"certificate as --key", nil, sign(chain, chainAsKey), 2, []string{"--key: key " + chainAsKey + " holds a certificate, not a private key"}},
		{"RSA code-signing key as a role key", nil, add("1.0.0", "--targets-key", rsaKey), 1,
			[]string{"--targets-key: key " + rsaKey + ": it is an RSA key, such as a code-signing key; TUF role keys are Ed25519 or ECDSA P-256 (bcpublish keys generate makes them)"}},
		{"signature that is not CMS", nil, []string{"codesign", "verify", "--trust", pki.TrustDir, "--file", art, "--signature", art}, 3,
			[]string{"code signature verification failed: signature is not a DER CMS SignedData (a .p7s as bcpublish codesign sign, signtool /p7 or openssl cms -outform DER write it)\n"}},
		{"trust directory that does not exist", nil, []string{"codesign", "verify", "--trust", filepath.Join(dir, "no-trust"), "--file", art}, 2,
			[]string{"--trust: trust directory " + filepath.Join(dir, "no-trust") + " does not exist; a trust directory holds roots/*.pem (the pinned code-signing root certificates) and publishers"}},
		{"key directory as trust directory", nil, []string{"codesign", "verify", "--trust", keys, "--file", art}, 2,
			[]string{"no root certificates in " + filepath.Join(keys, "roots", "*.pem") + "; a trust directory holds roots/*.pem"}},
		{"certificate as a CRL", nil, []string{"trust", "add-crl", "--repo", repoDir, "--keys", keys, "--crl", chain}, 2,
			[]string{"--crl: CRL " + chain + " is not a certificate revocation list (DER, or PEM \"X509 CRL\")"}},

		// Role keys the repository's root does not list.
		{"key directory of another repository", nil, add("1.0.0", "--keys", keys2), 1,
			[]string{"bcpublish: --keys " + keys2 + ": targets.key does not match the repository: the targets key given is not one of the repository root's targets keys (0 of the 1 signatures needed); check that --keys is this repository's key directory, or give the targets key with --targets-key\n"}},
		{"key of another role", nil, add("1.0.0", "--targets-key", filepath.Join(keys, "snapshot.key")), 1,
			[]string{"--targets-key " + filepath.Join(keys, "snapshot.key") + " does not match the repository: the targets key given is the repository's snapshot key, not one of the repository root's targets keys", "give this repository's targets key"}},
		{"refresh with another repository's keys", nil, []string{"refresh", "--repo", repoDir, "--keys", keys2}, 1,
			[]string{"--keys " + keys2 + ": snapshot.key does not match the repository", "--snapshot-key"}},
		{"root rotate with another repository's root key", nil, []string{"root", "rotate", "--repo", repoDir, "--keys", keys2, "--extend"}, 1,
			[]string{"--keys " + keys2 + ": root.key does not match the repository: the root key given is not one of the repository root's root keys (0 of the 1 signatures needed)"}},
		{"root sign with a targets key", nil, []string{"root", "sign", "--key", filepath.Join(keys, "targets.key"), staged}, 1,
			[]string{"--key " + filepath.Join(keys, "targets.key") + ": wrong signing key: the key given is the staged root's targets key, not one of its root keys; sign with a root key"}},
		{"root stage with a file that is no key", nil, []string{"root", "stage", "--repo", repoDir, "--role", "targets", "--add-key", art, "--out", filepath.Join(dir, "x.json")}, 2,
			[]string{"--add-key: key " + art + " holds no PEM public or private key; give a .pub file"}},
		{"root stage of an impossible threshold", nil, []string{"root", "stage", "--repo", repoDir, "--role", "targets", "--threshold", "2", "--out", filepath.Join(dir, "x.json")}, 2,
			[]string{"role targets would need 2 signatures from 1 keys; give a threshold from 1 to the number of keys, adding keys with --add-key first"}},
		{"negative --retry", nil, add("1.0.0", "--retry", "-1"), 2, []string{"--retry -1: want 0 or more"}},

		// The repository and servers.
		{"repository changed by hand", nil, []string{"status", "--repo", tampered}, 3,
			[]string{"repository metadata verification failed: timestamp.json has 0 valid signatures by the timestamp keys of root v1, which needs 1"}},
		{"serve --addr without a port", nil, []string{"serve", "--repo", repoDir, "--addr", "localhost"}, 2,
			[]string{"--addr localhost: want HOST:PORT, such as 127.0.0.1:8080 or :8443"}},
		{"serve on a port in use", nil, []string{"serve", "--repo", repoDir, "--addr", ln.Addr().String()}, 1,
			[]string{"--addr " + ln.Addr().String() + ": the port is in use (another bcpublish serve?); give another port, or port 0 for a free one"}},
		{"S3 server not running", map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
			[]string{"status", "--repo", "s3://bucket/repo", "--s3-endpoint", "http://" + deadAddr, "--s3-path-style"}, 1,
			[]string{"get s3://bucket/repo/metadata/timestamp.json: cannot reach the S3 server", "check --s3-endpoint (or AWS_ENDPOINT_URL_S3) and that the server is running"}},
		{"S3 without credentials", nil, []string{"status", "--repo", "s3://bucket/repo"}, 2,
			[]string{"s3://bucket/repo: no usable AWS credentials; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"}},
	}
	// What people must never see alone: library messages.
	raw := []string{"pkcs7:", "unsigned metadata error", "got 0, want 1", "not a number\n", "asn1:", "operation error", "get identity", "SDK ", "PEM decoding failed"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			before := testutil.HashTree(t, repoDir)
			done := make(chan struct{})
			var code int
			var out, errOut string
			go func() { code, out, errOut = bcpublish(t, tc.args...); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatalf("bcpublish %v did not return", tc.args)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q\nwant %q", errOut, w)
				}
			}
			for _, r := range raw {
				if strings.Contains(errOut, r) {
					t.Errorf("stderr shows a library's message %q: %s", r, errOut)
				}
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("the error is not one line: %q", errOut)
			}
			if testutil.HashTree(t, repoDir) != before {
				t.Error("the refused command changed the repository")
			}
		})
	}
}
