//go:build !windows

// The Windows side (ACLs) cannot be tested by changing modes: these tests
// are Unix-only.

package client

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// permsLayout builds a good state directory and trust directory in a fresh
// temporary directory, with exact modes (whatever the umask).
func permsLayout(t *testing.T) (state, trust string) {
	t.Helper()
	base := t.TempDir()
	state = filepath.Join(base, "state")
	trust = filepath.Join(base, "trust")
	mkdir := func(p string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(p, []byte("x\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(state, 0o700)
	mkdir(filepath.Join(state, "tuf", "crl"), 0o700)
	mkdir(filepath.Join(state, "tuf", "cache"), 0o700)
	mkdir(filepath.Join(state, "staging", "app", "1.0.0"), 0o700)
	mkdir(filepath.Join(state, "cache", "app"), 0o700)
	mkdir(filepath.Join(state, "install"), 0o755)
	for _, f := range []string{"config.json", "state.json", "audit.jsonl", "audit.jsonl.head", "consent.jsonl", "consent.jsonl.head", "notifications.json", "agent.lock", "tuf/root.json", "tuf/timestamp.json", "tuf/crl/ca.crl", "staging/app/1.0.0/app.tar.gz", "cache/app/artifact"} {
		write(filepath.Join(state, f), 0o600)
	}
	write(filepath.Join(state, "tuf", "snapshot.json"), 0o644) // go-tuf writes 0644
	mkdir(filepath.Join(trust, "roots"), 0o755)
	mkdir(filepath.Join(trust, "tsa-roots"), 0o755)
	mkdir(filepath.Join(trust, "crl"), 0o755)
	for _, f := range []string{"roots/ca.pem", "tsa-roots/tsa.pem", "crl/ca.crl", "publishers"} {
		write(filepath.Join(trust, f), 0o644)
	}
	return state, trust
}

func TestCheckPermissions(t *testing.T) {
	const nobody = 65534
	tests := []struct {
		name string
		// setup breaks the good layout; it returns the path the error
		// must name ("" when the layout must pass) and the trust dir
		// to check if it is not the layout's.
		setup    func(t *testing.T, state, trust string) (path, trustArg string)
		root     bool   // needs root (chown)
		wantText string // in the error
	}{
		{name: "good layout passes", setup: func(t *testing.T, state, trust string) (string, string) { return "", "" }},
		{name: "missing trust dir is left to LoadTrust", setup: func(t *testing.T, state, trust string) (string, string) {
			return "", filepath.Join(trust, "nope")
		}},
		{name: "state dir 0777", wantText: "permissions 0777 are too open", setup: func(t *testing.T, state, trust string) (string, string) {
			chmod(t, state, 0o777)
			return state, ""
		}},
		{name: "config.json 0666", wantText: "permissions 0666 are too open (writable by group or others); run chmod go-w", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(state, "config.json")
			chmod(t, p, 0o666)
			return p, ""
		}},
		{name: "file in tuf group-writable", wantText: "too open", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(state, "tuf", "timestamp.json")
			chmod(t, p, 0o620)
			return p, ""
		}},
		{name: "staged file other-writable", wantText: "too open", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(state, "staging", "app", "1.0.0", "app.tar.gz")
			chmod(t, p, 0o602)
			return p, ""
		}},
		{name: "trust roots 0777", wantText: "permissions 0777 are too open", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(trust, "roots")
			chmod(t, p, 0o777)
			return p, ""
		}},
		{name: "trust dir 0775", wantText: "permissions 0775 are too open", setup: func(t *testing.T, state, trust string) (string, string) {
			chmod(t, trust, 0o775)
			return trust, ""
		}},
		{name: "trust crl file group-writable", wantText: "permissions 0664 are too open", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(trust, "crl", "ca.crl")
			chmod(t, p, 0o664)
			return p, ""
		}},
		{name: "staging is a symlink", wantText: "is a symbolic link; the agent refuses to follow links in its state directory: remove it (the agent recreates staging/)", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(state, "staging")
			elsewhere := filepath.Join(filepath.Dir(state), "elsewhere")
			mkdirMode(t, elsewhere, 0o700)
			replaceWithLink(t, p, elsewhere)
			return p, ""
		}},
		{name: "tuf/root.json is a symlink", wantText: "is a symbolic link; the agent refuses to follow links in its state directory: replace it with the regular file", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(state, "tuf", "root.json")
			other := filepath.Join(filepath.Dir(state), "root.json")
			if err := os.WriteFile(other, []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
			replaceWithLink(t, p, other)
			return p, ""
		}},
		{name: "agent.lock is a symlink", wantText: "is a symbolic link", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(state, "agent.lock")
			replaceWithLink(t, p, "/etc/passwd")
			return p, ""
		}},
		{name: "link inside the trust dir", wantText: "the agent refuses to follow links in its trust directory", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(trust, "roots", "evil.pem")
			if err := os.Symlink("ca.pem", p); err != nil {
				t.Fatal(err)
			}
			return p, ""
		}},
		{name: "trust dir reached through a link passes", setup: func(t *testing.T, state, trust string) (string, string) {
			link := filepath.Join(filepath.Dir(trust), "trust-link")
			if err := os.Symlink("trust", link); err != nil {
				t.Fatal(err)
			}
			return "", link
		}},
		{name: "trust dir linked into an open directory", wantText: "too open for a directory above the agent's files", setup: func(t *testing.T, state, trust string) (string, string) {
			open := filepath.Join(filepath.Dir(trust), "open")
			mkdirMode(t, open, 0o777)
			if err := os.Rename(trust, filepath.Join(open, "trust")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(open, "trust"), trust); err != nil {
				t.Fatal(err)
			}
			return open, ""
		}},
		{name: "parent of state dir 0777", wantText: "too open for a directory above the agent's files (writable by group or others, no sticky bit)", setup: func(t *testing.T, state, trust string) (string, string) {
			parent := filepath.Dir(state)
			chmod(t, parent, 0o777)
			return parent, ""
		}},
		{name: "parent of state dir 1777 (sticky) passes", setup: func(t *testing.T, state, trust string) (string, string) {
			chmod(t, filepath.Dir(state), 0o777|os.ModeSticky)
			return "", ""
		}},
		{name: "device key readable by others", wantText: "permissions 0644 let group or others read the device's private key; run chmod 600", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(state, "fleet.key")
			if err := os.WriteFile(p, []byte("key"), 0o600); err != nil {
				t.Fatal(err)
			}
			chmod(t, p, 0o644)
			return p, ""
		}},
		{name: "device key 0600 passes", setup: func(t *testing.T, state, trust string) (string, string) {
			if err := os.WriteFile(filepath.Join(state, "fleet.key"), []byte("key"), 0o600); err != nil {
				t.Fatal(err)
			}
			return "", ""
		}},
		{name: "fleet.key is a symlink", wantText: "is a symbolic link; the agent refuses to follow links in its state directory", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(state, "fleet.key")
			replaceWithLink(t, p, "/etc/hostname")
			return p, ""
		}},
		{name: "queued report group-writable", wantText: "too open", setup: func(t *testing.T, state, trust string) (string, string) {
			mkdirMode(t, filepath.Join(state, "fleet-queue"), 0o700)
			p := filepath.Join(state, "fleet-queue", "00000000000000000001.json")
			if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
			chmod(t, p, 0o620)
			return p, ""
		}},
		{name: "config.json owned by another user", root: true, wantText: "owned by uid 65534, not by the agent's user (uid 0) or root; run chown 0", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(state, "config.json")
			chown(t, p, nobody)
			return p, ""
		}},
		{name: "trust publishers owned by another user", root: true, wantText: "owned by uid 65534", setup: func(t *testing.T, state, trust string) (string, string) {
			p := filepath.Join(trust, "publishers")
			chown(t, p, nobody)
			return p, ""
		}},
		{name: "state dir owned by another user", root: true, wantText: "owned by uid 65534", setup: func(t *testing.T, state, trust string) (string, string) {
			chown(t, state, nobody)
			return state, ""
		}},
		{name: "link to the trust dir owned by another user", root: true, wantText: "owned by uid 65534", setup: func(t *testing.T, state, trust string) (string, string) {
			link := filepath.Join(filepath.Dir(trust), "trust-link")
			if err := os.Symlink("trust", link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(link, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return link, link
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("needs root to chown to another user")
			}
			state, trust := permsLayout(t)
			path, trustArg := tc.setup(t, state, trust)
			if trustArg == "" {
				trustArg = trust
			}
			err := CheckPermissions(state, trustArg)
			if path == "" {
				if err != nil {
					t.Fatalf("CheckPermissions: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckPermissions passed; want an error naming %s", path)
			}
			if !errors.Is(err, ErrVerification) {
				t.Errorf("error does not wrap ErrVerification: %v", err)
			}
			if msg := err.Error(); !strings.Contains(msg, path+":") && !strings.Contains(msg, path+" is a") {
				t.Errorf("error does not name %s: %v", path, err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not say %q", err, tc.wantText)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// TestInitRefusesOpenTrustDir: a too-open trust directory stops Init before
// it writes anything.
func TestInitRefusesOpenTrustDir(t *testing.T) {
	state, trust := permsLayout(t)
	chmod(t, filepath.Join(trust, "roots"), 0o777)
	fresh := filepath.Join(filepath.Dir(state), "fresh")
	err := Init(fresh, InitOptions{Config: Config{
		RepositoryURL: "https://updates.example.com/repo",
		Components:    []string{"app"},
		DeviceID:      "dev-1",
		DeviceModel:   "model",
		TrustDir:      trust,
	}, RootFile: filepath.Join(state, "tuf", "root.json")})
	if !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), filepath.Join(trust, "roots")+":") {
		t.Fatalf("Init: %v; want a verification error naming roots/", err)
	}
	if _, err := os.Lstat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Init created %s before refusing (%v)", fresh, err)
	}
}

// TestOpenRefusesOpenConfig: Open checks before it takes the lock or reads
// the trust directory.
func TestOpenRefusesOpenConfig(t *testing.T) {
	state, trust := permsLayout(t)
	os.Remove(filepath.Join(state, "agent.lock"))
	cfg := `{"repository_url":"https://updates.example.com/repo","components":["app"],"platform":"linux-amd64","channel":"stable",` +
		`"device_id":"dev-1","device_model":"model","trust_dir":"` + trust + `","install_root":"` + filepath.Join(state, "install") + `"}`
	p := filepath.Join(state, "config.json")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	chmod(t, p, 0o666)
	a, err := Open(state, nil)
	if err == nil {
		a.Close()
		t.Fatal("Open accepted a world-writable config.json")
	}
	if !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), p+": permissions 0666") {
		t.Fatalf("Open: %v; want a verification error naming %s", err, p)
	}
	if _, err := os.Lstat(filepath.Join(state, "agent.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open took the lock before refusing (%v)", err)
	}
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if err := os.Chown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func mkdirMode(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(p, mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, p, mode)
}

func replaceWithLink(t *testing.T, p, target string) {
	t.Helper()
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// TestCheckInstallPermissions: the install root's rules, including the link
// an interrupted switch of current leaves behind (a kill between symlink and
// rename must not keep the agent from starting again to recover).
func TestCheckInstallPermissions(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, comp string) string // returns the path the error must name, "" to pass
		wantText string
	}{
		{name: "good layout passes", setup: func(t *testing.T, comp string) string { return "" }},
		{name: "leftover .current.tmp of an interrupted switch passes", setup: func(t *testing.T, comp string) string {
			if err := os.Symlink("2.0.0", filepath.Join(comp, ".current.tmp")); err != nil {
				t.Fatal(err)
			}
			return ""
		}},
		{name: "another link is refused", wantText: "the agent refuses to follow links in its install root: remove it", setup: func(t *testing.T, comp string) string {
			p := filepath.Join(comp, "2.0.0")
			if err := os.Symlink("/etc", p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{name: "component directory is a link", wantText: "replace it with the directory it points to", setup: func(t *testing.T, comp string) string {
			other := filepath.Join(filepath.Dir(comp), "other")
			mkdirMode(t, other, 0o755)
			replaceWithLink(t, comp, other)
			return comp
		}},
		{name: "version directory group-writable", wantText: "too open", setup: func(t *testing.T, comp string) string {
			p := filepath.Join(comp, "1.0.0")
			chmod(t, p, 0o775)
			return p
		}},
		{name: "features.json other-writable", wantText: "too open", setup: func(t *testing.T, comp string) string {
			p := filepath.Join(comp, "features.json")
			chmod(t, p, 0o646)
			return p
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "install")
			mkdirMode(t, root, 0o755)
			comp := filepath.Join(root, "app")
			mkdirMode(t, comp, 0o755)
			mkdirMode(t, filepath.Join(comp, "1.0.0"), 0o755)
			if err := os.WriteFile(filepath.Join(comp, "features.json"), []byte("{}"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("1.0.0", filepath.Join(comp, "current")); err != nil {
				t.Fatal(err)
			}
			path := tc.setup(t, comp)
			err := CheckInstallPermissions(root, []string{"app"})
			if path == "" {
				if err != nil {
					t.Fatalf("CheckInstallPermissions: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckInstallPermissions passed; want an error naming %s", path)
			}
			if !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("error %q: want ErrVerification naming %s and saying %q", err, path, tc.wantText)
			}
		})
	}
}
