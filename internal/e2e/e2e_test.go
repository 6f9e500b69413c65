package e2e

import (
	"archive/tar"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/repo"
)

func TestPublishInstallUpdate(t *testing.T) {
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	body, err := os.ReadFile(filepath.Join(e.install, component, "current", "VERSION"))
	if err != nil || string(body) != "1.0.0\n" {
		t.Fatalf("installed VERSION %q, %v", body, err)
	}
	fi, err := os.Stat(filepath.Join(e.install, component, "current", "bin", "notification-client"))
	if err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("binary not installed executable: %v %v", fi, err)
	}

	// Nothing new: check is a no-op and apply has nothing to do.
	before := e.snap()
	e.mustInstall("1.0.0")
	if e.snap() != before {
		t.Fatal("a no-op check/stage/apply changed the install tree or state")
	}

	e.publish("1.1.0")
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	var st *client.StatusReport
	e.do(func(a *client.Agent) error { st, err = a.Status(); return err })
	if c := st.Components[0]; c.State != client.StateUpdateAvailable || *c.Available != "1.1.0" || *c.Installed != "1.0.0" {
		t.Fatalf("after check: %+v", c)
	}
	e.mustInstall("1.1.0")
	if _, err := os.Stat(filepath.Join(e.install, component, "1.0.0")); err != nil {
		t.Fatal("previous version was not kept")
	}
	e.do(func(a *client.Agent) error { st, err = a.Status(); return err })
	b, _ := json.Marshal(st)
	for _, want := range []string{`"id":"INST-0042"`, `"model":"Navios EX"`, `"phi":true`, `"installed":"1.1.0"`, `"state":"up-to-date"`, `"timestamp_version":3`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status %s lacks %s", b, want)
		}
	}

	// A third release prunes the oldest; rollback goes back one.
	e.publish("1.2.0")
	e.mustInstall("1.2.0")
	if _, err := os.Stat(filepath.Join(e.install, component, "1.0.0")); !os.IsNotExist(err) {
		t.Error("1.0.0 should have been pruned")
	}
	if err := e.do(func(a *client.Agent) error { _, err := a.Rollback(context.Background(), component); return err }); err != nil {
		t.Fatal(err)
	}
	if e.current() != "1.1.0" {
		t.Fatalf("rollback left current at %s", e.current())
	}
	// The release rolled back from is not offered again until a newer one.
	e.mustInstall("1.1.0")
	e.publish("1.3.0")
	e.mustInstall("1.3.0")
}

func TestNoDowngrade(t *testing.T) {
	e := newEnv(t)
	e.publish("1.1.0")
	e.mustInstall("1.1.0")
	// A channel pointed back at an older (validly signed) release.
	old := tarball(t, "1.0.0")
	e.publishRaw(rawRelease{version: "1.0.0", artifact: old, sig: sign(t, old, e.pki.Leaf)})
	e.mustInstall("1.1.0")
}

func TestSecondAgentIsLockedOut(t *testing.T) {
	e := newEnv(t)
	a, err := client.Open(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := client.Open(e.state, nil); !errors.Is(err, client.ErrLocked) {
		t.Fatalf("second agent: want ErrLocked, got %v", err)
	}
}

// TestAttacks: each attack is refused as a verification failure and leaves
// install/, current and state.json exactly as they were.
func TestAttacks(t *testing.T) {
	type attack struct {
		name string
		// setup runs with 1.0.0 installed; it returns the phase that must
		// fail: "check", "stage" or "apply" (earlier phases must pass).
		setup func(t *testing.T, e *env) string
	}
	signedBy := func(leaf func(e *env) *testutil.Leaf) func(t *testing.T, e *env) string {
		return func(t *testing.T, e *env) string {
			data := tarball(t, "1.1.0")
			e.publishRaw(rawRelease{version: "1.1.0", artifact: data, sig: sign(t, data, leaf(e))})
			return "stage"
		}
	}
	archive := func(entries ...testutil.TarEntry) func(t *testing.T, e *env) string {
		return func(t *testing.T, e *env) string {
			data := testutil.TarGz(t, entries...)
			e.publishRaw(rawRelease{version: "1.1.0", artifact: data, sig: sign(t, data, e.pki.Leaf)})
			return "apply"
		}
	}
	pointer := func(p string) func(t *testing.T, e *env) string {
		return func(t *testing.T, e *env) string {
			data := tarball(t, "1.1.0")
			e.publishRaw(rawRelease{version: "1.1.0", artifact: data, sig: sign(t, data, e.pki.Leaf), pointer: p})
			return "check"
		}
	}
	attacks := []attack{
		{"artifact replaced on the server", func(t *testing.T, e *env) string {
			res := e.publish("1.1.0")
			p := filepath.Join(e.store.Dir, filepath.FromSlash(storageOf(res.Path, res.SHA256)))
			evil := testutil.TarGz(t, testutil.TarEntry{Name: "bin/notification-client", Body: "#!/bin/sh\nrm -rf /\n"})
			if err := os.WriteFile(p, evil, 0o644); err != nil {
				t.Fatal(err)
			}
			return "stage"
		}},
		{"signature from an untrusted root", signedBy(func(e *env) *testutil.Leaf {
			return testutil.NewRoot(e.t, "Evil Root").Intermediate(e.t, "Evil CA").Leaf(e.t, testutil.LeafOptions{})
		})},
		{"leaf without codeSigning EKU", signedBy(func(e *env) *testutil.Leaf {
			return e.pki.Intermediate.Leaf(e.t, testutil.LeafOptions{NoEKU: true})
		})},
		{"anyExtendedKeyUsage leaf", signedBy(func(e *env) *testutil.Leaf {
			return e.pki.Intermediate.Leaf(e.t, testutil.LeafOptions{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		})},
		{"expired leaf", signedBy(func(e *env) *testutil.Leaf {
			return e.pki.Intermediate.Leaf(e.t, testutil.LeafOptions{NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
		})},
		{"another publisher from the same root", signedBy(func(e *env) *testutil.Leaf {
			return e.pki.Intermediate.Leaf(e.t, testutil.LeafOptions{Organization: "Mallory Diagnostics"})
		})},
		{"tampered signature", func(t *testing.T, e *env) string {
			data := tarball(t, "1.1.0")
			sig := sign(t, data, e.pki.Leaf)
			sig[len(sig)-3] ^= 0xff
			e.publishRaw(rawRelease{version: "1.1.0", artifact: data, sig: sig})
			return "stage"
		}},
		{"signature of other content", func(t *testing.T, e *env) string {
			data := tarball(t, "1.1.0")
			e.publishRaw(rawRelease{version: "1.1.0", artifact: data, sig: sign(t, tarball(t, "9.9.9"), e.pki.Leaf)})
			return "stage"
		}},
		{"timestamp rollback", func(t *testing.T, e *env) string {
			old, _ := os.ReadFile(filepath.Join(e.store.Dir, "metadata", "timestamp.json"))
			e.publish("1.1.0")
			if err := e.check(); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(e.store.Dir, "metadata", "timestamp.json"), old, 0o644)
			return "check"
		}},
		{"snapshot rollback", func(t *testing.T, e *env) string {
			r := e.loadRepo()
			oldSnap := *r.Timestamp.Signed.Meta["snapshot.json"]
			e.publish("1.1.0")
			if err := e.check(); err != nil {
				t.Fatal(err)
			}
			r = e.loadRepo()
			files, err := r.Refresh(e.keys, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			// A newer timestamp that names the older snapshot.
			r.Timestamp.Signed.Meta["snapshot.json"] = &oldSnap
			r.Timestamp.ClearSignatures()
			for _, s := range e.keys[repo.RoleTimestamp] {
				r.Timestamp.Sign(s)
			}
			ts, _ := r.Timestamp.ToBytes(true)
			e.writeMetadata(files[:1])
			e.writeMetadata([]repo.File{{Name: "timestamp.json", Data: ts}})
			return "check"
		}},
		{"expired timestamp (freeze)", func(t *testing.T, e *env) string {
			e.publish("1.1.0")
			r := e.loadRepo()
			files, err := r.Refresh(e.keys, time.Now().Add(-48*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			e.writeMetadata(files)
			return "check"
		}},
		{"pointer with ..", pointer("notification-client/linux-amd64/../../../../tmp/evil.tar.gz")},
		{"pointer with an absolute path", pointer("/etc/passwd")},
		{"pointer with backslashes", pointer(`notification-client\linux-amd64\1.1.0\evil.tar.gz`)},
		{"pointer to another component (mix-and-match)", pointer("remote-support-client/linux-amd64/1.1.0/notification-client-1.1.0.tar.gz")},
		{"target path with .. in signed metadata", func(t *testing.T, e *env) string {
			data := tarball(t, "1.1.0")
			p := "notification-client/linux-amd64/1.1.0/../../../../../tmp/notification-client-1.1.0.tar.gz"
			e.publishRaw(rawRelease{version: "1.1.0", artifact: data, sig: sign(t, data, e.pki.Leaf), artPath: p})
			return "check"
		}},
		{"archive with ../ entry", archive(
			testutil.TarEntry{Name: "VERSION", Body: "1.1.0\n"},
			testutil.TarEntry{Name: "../../../evil", Body: "x"})},
		{"archive with an absolute entry", archive(testutil.TarEntry{Name: "/tmp/bcupdate-evil", Body: "x"})},
		{"archive with an escaping symlink", archive(
			testutil.TarEntry{Name: "etc", Type: tar.TypeSymlink, Linkname: "../../../../../../etc"})},
		{"archive writing through a symlink", archive(
			testutil.TarEntry{Name: "up", Type: tar.TypeSymlink, Linkname: ".."},
			testutil.TarEntry{Name: "up/1.0.0/VERSION", Body: "owned"})},
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			e := newEnv(t)
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			phase := at.setup(t, e)
			ops := []struct {
				name string
				fn   func() error
			}{{"check", e.check}, {"stage", e.stage}, {"apply", e.apply}}
			for _, op := range ops {
				if op.name == phase {
					before := e.snap()
					err := op.fn()
					if !errors.Is(err, client.ErrVerification) {
						t.Fatalf("%s: want a verification failure, got %v", op.name, err)
					}
					t.Logf("refused as expected: %v", err)
					if e.snap() != before {
						t.Fatal("the refused attack changed install/, current or state.json")
					}
					if e.current() != "1.0.0" {
						t.Fatalf("current moved to %q", e.current())
					}
					if _, err := os.Stat(filepath.Join(e.dir, "evil")); err == nil {
						t.Fatal("a file was written outside the install root")
					}
					var notes []client.Notification
					var audit []client.LogEntry
					e.do(func(a *client.Agent) error {
						notes, _ = a.Notifications()
						audit, _, err = a.ExportLogs()
						return err
					})
					if !slices.ContainsFunc(notes, func(n client.Notification) bool {
						return n.Kind == client.NoteVerificationFailure || n.Kind == client.NoteMetadataExpired
					}) {
						t.Errorf("no critical notification for the refused attack: %+v", notes)
					}
					if len(audit) == 0 || !strings.Contains(string(audit[len(audit)-1].Entry), `"event":"verification-failure"`) {
						t.Errorf("the refused attack was not audited")
					}
					return
				}
				if err := op.fn(); err != nil {
					t.Fatalf("%s should pass before the attack's phase %s: %v", op.name, phase, err)
				}
			}
			t.Fatalf("phase %q never ran", phase)
		})
	}
}
