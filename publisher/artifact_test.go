package publisher_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/regfile"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/signer"
)

// rawArtifact writes data as a code-signed artifact (a valid signature on
// whatever bytes it is given).
func (f *fixture) rawArtifact(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, "raw", name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, data, 0o644)
	sig, err := signer.SignDetached(bytes.NewReader(data), f.pki.Leaf.Chain, f.pki.Leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p+".p7s", sig, 0o644)
	return p
}

// within fails the test if fn does not return in time (a FIFO must be
// refused, not waited on).
func within(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("blocked on a FIFO or device")
		return nil
	}
}

// TestReleaseAddRefusesWhatAgentsRefuse: a code-signed archive that every
// agent would refuse to unpack (internal/archive, the agents' own code) is
// refused at release add as the release engineer's usage error, naming the
// file and the entry, before anything is written.
func TestReleaseAddRefusesWhatAgentsRefuse(t *testing.T) {
	f := newFixture(t)
	good := testutil.TarGz(t, testutil.TarEntry{Name: "bin/nc", Body: "#!/bin/sh\n", Mode: 0o755})
	var lying bytes.Buffer
	zw := gzip.NewWriter(&lying)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "bin/nc", Typeflag: tar.TypeReg, Mode: 0o755, Size: 1000})
	tw.Write([]byte("short"))
	zw.Close()
	cases := []struct {
		name string
		file string
		data []byte
		want []string
	}{
		{"empty tar.gz", "nc-1.2.0.tar.gz", nil, []string{"nc-1.2.0.tar.gz: not a valid .tar.gz: unexpected EOF; agents would refuse it"}},
		{"truncated tar.gz", "nc-1.2.0.tar.gz", good[:len(good)-20], []string{"not a valid .tar.gz", "agents would refuse it"}},
		{"text named .tgz", "nc-1.2.0.tgz", []byte("not an archive\n"), []string{"not a valid .tar.gz"}},
		{"entry escaping", "nc-1.2.0.tar.gz", testutil.TarGz(t, testutil.TarEntry{Name: "../evil", Body: "x"}), []string{`archive entry "../evil": contains ..`}},
		{"absolute symlink", "nc-1.2.0.tar.gz", testutil.TarGz(t, testutil.TarEntry{Name: "etc", Type: tar.TypeSymlink, Linkname: "/etc"}), []string{`archive entry "etc"`}},
		{"symlink chain", "nc-1.2.0.tar.gz", testutil.TarGz(t,
			testutil.TarEntry{Name: "x", Type: tar.TypeSymlink, Linkname: "."},
			testutil.TarEntry{Name: "q", Type: tar.TypeSymlink, Linkname: "x/.."}), []string{`archive entry "q": symlink resolves outside`}},
		{"size that lies", "nc-1.2.0.tar.gz", lying.Bytes(), []string{`archive entry "bin/nc": the archive's data is corrupt`}},
		{"device", "nc-1.2.0.tar.gz", testutil.TarGz(t, testutil.TarEntry{Name: "dev", Type: tar.TypeChar}), []string{`archive entry "dev"`}},
		{"empty zip", "nc-1.2.0.zip", nil, []string{"not a valid .zip"}},
		{"zip escaping", "nc-1.2.0.zip", testutil.Zip(t, testutil.TarEntry{Name: "../../evil", Body: "x"}), []string{`archive entry "../../evil"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := f.rawArtifact(t, tc.file, tc.data)
			before := testutil.HashTree(t, f.store.Dir)
			_, err := f.add(publisher.ReleaseOptions{Version: "1.2.0", File: file})
			if !errors.Is(err, publisher.ErrUsage) {
				t.Fatalf("want a usage error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "--file "+file) {
				t.Errorf("error %q does not name --file %s", err, file)
			}
			if testutil.HashTree(t, f.store.Dir) != before {
				t.Fatal("a refused release add changed the repository")
			}
		})
	}
	// The same bytes, well formed, publish.
	if _, err := f.add(publisher.ReleaseOptions{Version: "1.2.0", File: f.rawArtifact(t, "ok/nc-1.2.0.tar.gz", good)}); err != nil {
		t.Fatal(err)
	}
}

// TestFlagFilesAreRegularAndBounded: every file release add (and the
// other publisher commands) read from a flag must be a regular file within
// a named limit, checked before it is read: a device or FIFO is refused at
// once, not read into memory or waited on.
func TestFlagFilesAreRegularAndBounded(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if err := syscall.Mkfifo(fifo+".zip", 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.p7s")
	os.WriteFile(big, make([]byte, signer.MaxSignatureSize+1), 0o644)
	good := f.artifact(t, "nc.zip", "payload", f.pki.Leaf)
	text := filepath.Join(dir, "text")
	os.WriteFile(text, []byte("Title\nA description.\n"), 0o644)
	ctx := context.Background()

	cases := []struct {
		name string
		run  func() error
		want error
		msg  string
	}{
		{"--signature /dev/zero", func() error {
			_, err := f.add(publisher.ReleaseOptions{Version: "1.0.0", File: good, Signature: "/dev/zero"})
			return err
		}, regfile.ErrNotRegular, "--signature /dev/zero: not a regular file (a character device)"},
		{"--signature FIFO", func() error {
			_, err := f.add(publisher.ReleaseOptions{Version: "1.0.0", File: good, Signature: fifo})
			return err
		}, regfile.ErrNotRegular, "--signature " + fifo + ": not a regular file (a FIFO)"},
		{"--signature too large", func() error {
			_, err := f.add(publisher.ReleaseOptions{Version: "1.0.0", File: good, Signature: big})
			return err
		}, regfile.ErrTooLarge, "larger than the limit of 1048576 bytes"},
		{"--file FIFO", func() error {
			_, err := f.add(publisher.ReleaseOptions{Version: "1.0.0", File: fifo + ".zip"})
			return err
		}, regfile.ErrNotRegular, ": not a regular file (a FIFO)"},
		{"--file /dev/zero", func() error {
			_, err := f.add(publisher.ReleaseOptions{Version: "1.0.0", File: "/dev/zero", Install: "file"})
			return err
		}, regfile.ErrNotRegular, "--file /dev/zero: not a regular file"},
		{"--feature-text /dev/zero", func() error {
			_, err := publisher.ParseFeatures([]string{"f"}, []string{"f=/dev/zero"})
			return err
		}, regfile.ErrNotRegular, "--feature-text f=/dev/zero: not a regular file"},
		{"--feature-text FIFO", func() error {
			_, err := publisher.ParseFeatures([]string{"f"}, []string{"f=" + fifo})
			return err
		}, regfile.ErrNotRegular, "--feature-text f=" + fifo + ": not a regular file"},
		{"--feature-text too large", func() error {
			_, err := publisher.ParseFeatures([]string{"f"}, []string{"f=" + big})
			return err
		}, regfile.ErrTooLarge, "larger than the limit of 65536 bytes"},
		{"--gate FIFO", func() error { _, _, err := publisher.ReadGate(fifo, ""); return err }, regfile.ErrNotRegular, "--gate " + fifo},
		{"--gate-signature /dev/zero", func() error { _, _, err := publisher.ReadGate(text, "/dev/zero"); return err }, regfile.ErrNotRegular, "--gate-signature /dev/zero"},
		{"policy --file /dev/zero", func() error {
			_, _, err := publisher.SetPolicy(ctx, f.store, f.keys, f.trust, publisher.PolicyOptions{File: "/dev/zero"})
			return err
		}, regfile.ErrNotRegular, "--file /dev/zero"},
		{"policy --signature FIFO", func() error {
			p := filepath.Join(dir, "devices.json")
			os.WriteFile(p, []byte(`{"phi_device_classes": ["Navios"], "version": 5}`), 0o644)
			_, _, err := publisher.SetPolicy(ctx, f.store, f.keys, f.trust, publisher.PolicyOptions{File: p, Signature: fifo})
			return err
		}, regfile.ErrNotRegular, "--signature " + fifo},
		{"--crl /dev/zero", func() error {
			_, _, err := publisher.AddCRL(ctx, f.store, f.keys, "/dev/zero", "ca", time.Now())
			return err
		}, regfile.ErrNotRegular, "--crl /dev/zero"},
		{"--crl FIFO", func() error {
			_, _, err := publisher.AddCRL(ctx, f.store, f.keys, fifo, "ca", time.Now())
			return err
		}, regfile.ErrNotRegular, "--crl " + fifo},
		{"codesign verify --signature /dev/zero", func() error {
			_, err := publisher.VerifyFile(f.pki.TrustDir, good, "/dev/zero")
			return err
		}, regfile.ErrNotRegular, "--signature /dev/zero"},
		{"codesign sign --file FIFO", func() error {
			chain, key := filepath.Join(dir, "chain.pem"), filepath.Join(dir, "leaf.key")
			testutil.WriteCerts(t, chain, f.pki.Leaf.Chain...)
			testutil.WriteKey(t, key, f.pki.Leaf.Key)
			_, err := publisher.SignFile(chain, key, fifo, filepath.Join(dir, "out.p7s"))
			return err
		}, regfile.ErrNotRegular, "--file " + fifo},
		{"codesign sign --cert /dev/zero", func() error {
			_, err := publisher.SignFile("/dev/zero", filepath.Join(dir, "leaf.key"), good, filepath.Join(dir, "out.p7s"))
			return err
		}, regfile.ErrNotRegular, "/dev/zero: not a regular file"},
		{"role key FIFO", func() error {
			_, err := publisher.LoadSignerRef(ctx, fifo)
			return err
		}, regfile.ErrNotRegular, fifo + ": not a regular file"},
		{"--add-key /dev/zero", func() error {
			_, err := publisher.LoadPublicKeyRef(ctx, "/dev/zero")
			return err
		}, regfile.ErrNotRegular, "/dev/zero: not a regular file"},
		{"root sign FILE FIFO", func() error {
			_, _, err := publisher.SignRootFile(fifo, f.keys["root"][0])
			return err
		}, regfile.ErrNotRegular, fifo + ": not a regular file"},
		{"root publish FILE too large", func() error {
			huge := filepath.Join(dir, "root.json")
			os.WriteFile(huge, make([]byte, 1<<20), 0o644)
			_, err := publisher.PublishRoot(ctx, f.store, huge, f.keys, time.Now())
			return err
		}, regfile.ErrTooLarge, "larger than the limit of"},
		{"serve --tls-cert /dev/zero", func() error {
			return publisher.Serve(ctx, f.store, publisher.ServeOptions{Addr: "127.0.0.1:0", TLSCert: "/dev/zero", TLSKey: fifo})
		}, regfile.ErrNotRegular, "--tls-cert /dev/zero"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.HashTree(t, f.store.Dir)
			err := within(t, tc.run)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("want %v %q, got %v", tc.want, tc.msg, err)
			}
			if testutil.HashTree(t, f.store.Dir) != before {
				t.Fatal("the refused command changed the repository")
			}
		})
	}
}
