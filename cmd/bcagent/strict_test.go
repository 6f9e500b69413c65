//go:build !windows

package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/publisher"
)

// TestStrictModes: a state or trust directory another local user could
// write is refused with exit 3 and a message naming the path and the fix.
func TestStrictModes(t *testing.T) {
	cases := []struct {
		name string
		mess func(state, trust string)
		want string
	}{
		{"trust roots/ world-writable", func(_, trust string) { os.Chmod(filepath.Join(trust, "roots"), 0o777) }, "roots: permissions 0777 are too open"},
		{"config.json world-writable", func(state, _ string) { os.Chmod(filepath.Join(state, "config.json"), 0o666) }, "config.json: permissions 0666 are too open"},
		{"state directory world-writable", func(state, _ string) { os.Chmod(state, 0o777) }, "permissions 0777 are too open"},
		{"install root world-writable", func(state, _ string) { os.Chmod(filepath.Join(state, "install"), 0o777) }, "install: permissions 0777 are too open"},
		{"component directory group-writable", func(state, _ string) {
			os.Chmod(filepath.Join(state, "install", "notification-client"), 0o775)
		}, "notification-client: permissions 0775 are too open"},
		{"features.json world-writable", func(state, _ string) {
			os.Chmod(filepath.Join(state, "install", "notification-client", "features.json"), 0o666)
		}, "features.json: permissions 0666 are too open"},
		{"staging is a symlink", func(state, _ string) {
			os.RemoveAll(filepath.Join(state, "staging"))
			os.Symlink(t.TempDir(), filepath.Join(state, "staging"))
		}, "staging is a symbolic link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.publish("1.0.0")
			srv := httptest.NewServer(publisher.Handler(fx.store, nil))
			defer srv.Close()
			state := filepath.Join(fx.dir, "agent")
			if code, _, errOut := bcagent(t, "--state", state, "init", "--repo-url", srv.URL, "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"),
				"--trust", fx.pki.TrustDir, "--component", "notification-client", "--device-id", "INST-7", "--device-model", "DxH 900",
				"--platform", "linux-amd64"); code != 0 {
				t.Fatalf("init: exit %d: %s", code, errOut)
			}
			for _, cmd := range []string{"stage", "apply", "status"} {
				if code, _, errOut := bcagent(t, "--state", state, cmd); code != 0 {
					t.Fatalf("%s before: exit %d: %s", cmd, code, errOut)
				}
			}
			fx.publish("1.1.0")
			tc.mess(state, fx.pki.TrustDir)
			for _, cmd := range []string{"status", "check", "stage"} {
				code, _, errOut := bcagent(t, "--state", state, cmd)
				if code != 3 || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
					t.Fatalf("%s: exit %d (want 3), stderr %q, want %q on one line", cmd, code, errOut, tc.want)
				}
			}
			if _, err := os.Stat(filepath.Join(state, "install", "notification-client", "1.1.0")); err == nil {
				t.Fatal("something was installed")
			}
		})
	}
}
