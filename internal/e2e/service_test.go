package e2e

import (
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
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

// script is a release whose bin/notification-client exits with code.
func script(t *testing.T, v string, code int) []byte {
	return testutil.TarGz(t,
		testutil.TarEntry{Name: "bin/notification-client", Body: "#!/bin/sh\necho " + v + "\nexit " + string(rune('0'+code)) + "\n", Mode: 0o755},
		testutil.TarEntry{Name: "VERSION", Body: v + "\n"})
}

func healthCheck(o *publisher.ReleaseOptions) {
	o.HealthCheck = []string{"bin/notification-client", "--version"}
}

func TestHealthCheckFailureRollsBack(t *testing.T) {
	e := newEnv(t)
	e.publishWith("1.0.0", artifactName("1.0.0"), script(t, "1.0.0", 0), healthCheck)
	e.mustInstall("1.0.0")
	e.publishWith("1.1.0", artifactName("1.1.0"), script(t, "1.1.0", 3), healthCheck)
	e.check()
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	err := e.apply()
	if err == nil || !strings.Contains(err.Error(), "health check failed") || !strings.Contains(err.Error(), "rolled back to 1.0.0") {
		t.Fatalf("want a rolled-back health check failure, got %v", err)
	}
	if e.current() != "1.0.0" {
		t.Fatalf("current is %s after the rollback", e.current())
	}
	if _, err := os.Stat(filepath.Join(e.install, component, "1.1.0")); !os.IsNotExist(err) {
		t.Error("the failed version was left on disk")
	}
	if _, err := os.Stat(filepath.Join(e.state, "journal.json")); !os.IsNotExist(err) {
		t.Error("journal left behind")
	}
	c := e.status().Components[0]
	if c.State != client.StateFailed || !strings.Contains(c.LastError, "health check failed") {
		t.Fatalf("status after rollback: %+v", c)
	}
	// Not retried: check and stage leave it alone.
	e.check()
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	if c := e.status().Components[0]; c.State != client.StateFailed || c.Staged != nil || c.Available != nil {
		t.Fatalf("a failed release was offered again: %+v", c)
	}
	var notes []client.Notification
	e.do(func(a *client.Agent) error { notes, err = a.Notifications(); return err })
	if !slices.ContainsFunc(notes, func(n client.Notification) bool { return n.Kind == client.NoteFailed }) {
		t.Errorf("no failed notification: %+v", notes)
	}
	// A newer release replaces it.
	e.publishWith("1.2.0", artifactName("1.2.0"), script(t, "1.2.0", 0), healthCheck)
	e.mustInstall("1.2.0")
	if c := e.status().Components[0]; c.State != client.StateUpToDate {
		t.Fatalf("after a good release: %+v", c)
	}
}

func TestInstallerKind(t *testing.T) {
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	marker := filepath.Join(t.TempDir(), "installed")
	installer := func(code int) []byte {
		return []byte("#!/bin/sh\necho \"$BCUPDATE_VERSION\" >> " + marker + "\nexit " + string(rune('0'+code)) + "\n")
	}
	kind := func(o *publisher.ReleaseOptions) {
		o.Install = "installer"
		o.Installer = []string{"sh", "{file}", "--quiet"}
	}
	// A failing installer leaves the old version.
	e.publishWith("1.1.0", "setup.sh", installer(1), kind)
	e.check()
	e.stage()
	if err := e.apply(); err == nil || !strings.Contains(err.Error(), "installer failed") {
		t.Fatalf("want an installer failure, got %v", err)
	}
	if e.current() != "1.0.0" {
		t.Fatalf("current is %s after a failed installer", e.current())
	}
	// A working one installs.
	e.publishWith("1.2.0", "setup.sh", installer(0), kind)
	e.mustInstall("1.2.0")
	b, _ := os.ReadFile(marker)
	if string(b) != "1.1.0\n1.2.0\n" {
		t.Fatalf("installer runs: %q", b)
	}
}

// TestRecoveryFinishesOrUndoes: an apply interrupted between the journal
// and the commit is undone; one interrupted after the commit is finished.
func TestRecoveryFinishesOrUndoes(t *testing.T) {
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	compDir := filepath.Join(e.install, component)
	// Crash after switching current to a half-committed 1.1.0.
	os.MkdirAll(filepath.Join(compDir, "1.1.0"), 0o755)
	os.Remove(filepath.Join(compDir, "current"))
	os.Symlink("1.1.0", filepath.Join(compDir, "current"))
	os.MkdirAll(filepath.Join(compDir, ".incoming-1.1.0"), 0o755)
	j, _ := json.Marshal(map[string]any{"component": component, "from": "1.0.0", "to": "1.1.0", "from_features": []string{}})
	os.WriteFile(filepath.Join(e.state, "journal.json"), j, 0o600)
	st := e.status() // opening the agent recovers
	if e.current() != "1.0.0" || *st.Components[0].Installed != "1.0.0" {
		t.Fatalf("not undone: current %s, state %v", e.current(), *st.Components[0].Installed)
	}
	if _, err := os.Stat(filepath.Join(compDir, ".incoming-1.1.0")); !errors.Is(err, os.ErrNotExist) {
		t.Error("incoming directory left")
	}
	// Crash after the commit, before current was fixed up.
	e.publish("1.1.0")
	e.mustInstall("1.1.0")
	os.Remove(filepath.Join(compDir, "current"))
	os.Symlink("1.0.0", filepath.Join(compDir, "current"))
	j, _ = json.Marshal(map[string]any{"component": component, "from": "1.0.0", "to": "1.1.0", "from_features": []string{}})
	os.WriteFile(filepath.Join(e.state, "journal.json"), j, 0o600)
	e.status()
	if e.current() != "1.1.0" {
		t.Fatalf("not finished: current %s", e.current())
	}
	if _, err := os.Stat(filepath.Join(e.state, "journal.json")); !os.IsNotExist(err) {
		t.Error("journal left behind")
	}
}

// TestMetadataCannotRunUnsignedCommands: someone with the TUF targets key
// but no code-signing certificate publishes a validly code-signed old
// artifact with a health check or installer that would run a shell
// command. The agent refuses the release; nothing runs.
func TestMetadataCannotRunUnsignedCommands(t *testing.T) {
	for name, edit := range map[string]func(r *repo.Release){
		"health check": func(r *repo.Release) { r.HealthCheck = []string{"/bin/sh", "-c", "touch PWNED"} },
		"installer": func(r *repo.Release) {
			r.Install = repo.InstallInstaller
			r.Installer = []string{"sh", "-c", "touch PWNED"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			rel := &repo.Release{Component: component, Version: "1.1.0", Platform: platform, Install: repo.InstallArchive,
				Codesign: repo.CodesignCMS, Released: time.Now().UTC().Format(time.RFC3339)}
			edit(rel)
			if rel.Validate() == nil {
				t.Fatal("the publisher-side check accepted it")
			}
			// Bypass the publisher: write the target with raw metadata.
			data := tarball(t, "1.1.0")
			custom, _ := json.Marshal(map[string]any{"bc": rel})
			raw := json.RawMessage(custom)
			r := e.loadRepo()
			art := repo.NewTarget(repo.ArtifactPath(component, platform, "1.1.0", artifactName("1.1.0")), data, &raw)
			sig := sign(t, data, e.pki.Leaf)
			sigT := repo.NewTarget(art.Path+".p7s", sig, nil)
			r.Set(art)
			r.Set(sigT)
			ptr, _ := json.Marshal(repo.Pointer{Release: art.Path})
			pt := repo.NewTarget(repo.ChannelPath(component, platform, "stable"), ptr, nil)
			r.Set(pt)
			files, err := r.Commit(e.keys, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			e.writeTarget(art, data)
			e.writeTarget(sigT, sig)
			e.writeTarget(pt, ptr)
			e.writeMetadata(files)
			if err := e.check(); !errors.Is(err, client.ErrVerification) {
				t.Fatalf("want a verification failure, got %v", err)
			}
			e.stage()
			e.apply()
			if e.current() != "1.0.0" {
				t.Fatal("installed")
			}
			if matches, _ := filepath.Glob(filepath.Join(e.install, "*", "*", "PWNED")); len(matches) > 0 {
				t.Fatal("a command from metadata ran")
			}
		})
	}
}
