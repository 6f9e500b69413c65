package packaging

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// root is the repository's top folder (this package's parent).
func root(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// buildPackages runs scripts/packages.sh into a temporary folder.
func buildPackages(t *testing.T, version string, args ...string) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("bash", append([]string{filepath.Join(root(t), "scripts", "packages.sh"), "--out", out}, args...)...)
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), "VERSION="+version, "SOURCE_DATE_EPOCH=1767225600")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/packages.sh %v: %v\n%s", args, err, b)
	}
	return out
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return string(b)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestDeb builds the .debs for this machine, installs them with dpkg -i,
// runs bcagent and bcpublish from their installed paths (bcagent init as
// the bcagent user, as docs/operations.md says), then removes them
// (dpkg -r: state and conffile kept) and purges them (nothing left, the
// user gone). It needs root, and a machine without a bcagent of its own:
// it never touches one.
func TestDeb(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the .deb is for Linux")
	}
	if os.Geteuid() != 0 {
		testutil.MissingTool(t, "TestDeb installs the .debs with dpkg -i: run it as root (CI does)")
		return
	}
	for _, tool := range []string{"dpkg", "dpkg-query", "runuser"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.MissingTool(t, "TestDeb needs "+tool+" (a Debian system)")
			return
		}
	}
	if exec.Command("dpkg-query", "-W", "bcagent").Run() == nil || exists("/var/lib/bcagent") || exists("/usr/bin/bcagent") {
		testutil.MissingTool(t, "TestDeb: this machine already has a bcagent (package, /var/lib/bcagent or /usr/bin/bcagent); the test installs and purges its own and will not touch that one")
		return
	}
	if _, err := user.Lookup("bcagent"); err == nil {
		testutil.MissingTool(t, "TestDeb: this machine already has a bcagent user; the test would remove it on purge")
		return
	}

	dist := buildPackages(t, "1.0.0-test", "--only", "deb", "--platform", "linux-"+runtime.GOARCH)
	debs := map[string]string{}
	for _, p := range []string{"bcagent", "bcpublish", "bcfleet"} {
		debs[p] = filepath.Join(dist, p+"_1.0.0~test_"+runtime.GOARCH+".deb")
		if !exists(debs[p]) {
			t.Fatalf("no %s in %s", filepath.Base(debs[p]), dist)
		}
	}
	t.Cleanup(func() {
		// Whatever happened, leave the machine as it was.
		_ = exec.Command("dpkg", "--purge", "bcagent", "bcpublish", "bcfleet").Run()
	})
	run(t, "dpkg", "-i", debs["bcagent"], debs["bcpublish"], debs["bcfleet"])

	// Installed: the programs, their man pages and completion, the
	// unit that waits for the configuration, the conffile, the user and
	// its state directory.
	for prog, want := range map[string]string{"bcagent": "bcagent version 1.0.0-test", "bcpublish": "bcpublish version 1.0.0-test", "bcfleet": "bcfleet version 1.0.0-test"} {
		if got := strings.TrimSpace(run(t, "/usr/bin/"+prog, "--version")); got != want {
			t.Errorf("/usr/bin/%s --version = %q, want %q", prog, got, want)
		}
		for _, f := range []string{"/usr/share/man/man1/" + prog + ".1.gz", "/usr/share/bash-completion/completions/" + prog,
			"/usr/share/zsh/vendor-completions/_" + prog, "/usr/share/fish/vendor_completions.d/" + prog + ".fish"} {
			if !exists(f) {
				t.Errorf("%s is not installed", f)
			}
		}
	}
	unit, err := os.ReadFile("/usr/lib/systemd/system/bcagent.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ConditionPathExists=/var/lib/bcagent/config.json", "User=bcagent", "ExecStart=/usr/bin/bcagent --state /var/lib/bcagent run"} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("the installed unit lacks %q", want)
		}
	}
	if got := run(t, "dpkg-query", "-W", "-f", "${Conffiles}", "bcagent"); !strings.Contains(got, "/etc/default/bcagent ") {
		t.Errorf("bcagent's conffiles = %q, want /etc/default/bcagent", got)
	}
	if got := strings.TrimSpace(run(t, "stat", "-c", "%U:%G %a", "/var/lib/bcagent")); got != "bcagent:bcagent 700" {
		t.Errorf("/var/lib/bcagent is %s, want bcagent:bcagent 700", got)
	}
	if exists("/var/lib/bcagent/config.json") {
		t.Error("the package wrote a configuration: only bcagent init may")
	}

	// bcpublish from its installed path makes a repository; bcagent
	// init, as the bcagent user, configures the agent from it.
	work, err := os.MkdirTemp("", "bcupdate-deb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	run(t, "/usr/bin/bcpublish", "keys", "generate", "--out", filepath.Join(work, "keys"))
	run(t, "/usr/bin/bcpublish", "init", "--repo", filepath.Join(work, "repo"), "--keys", filepath.Join(work, "keys"))
	etc := filepath.Join(work, "etc")
	run(t, "mkdir", "-p", etc)
	run(t, "cp", filepath.Join(work, "repo", "metadata", "1.root.json"), filepath.Join(etc, "root.json"))
	run(t, "cp", "-r", filepath.Join(root(t), "keys.example", "trust"), filepath.Join(etc, "trust"))
	run(t, "chmod", "-R", "go-w,a+rX", work)
	run(t, "runuser", "-u", "bcagent", "--", "/usr/bin/bcagent", "--state", "/var/lib/bcagent", "init",
		"--repo-url", "http://127.0.0.1:9", "--root", filepath.Join(etc, "root.json"), "--trust", filepath.Join(etc, "trust"),
		"--component", "notification-client", "--device-id", "DEB-TEST", "--device-model", "Navios EX")
	if got := strings.TrimSpace(run(t, "stat", "-c", "%U", "/var/lib/bcagent/config.json")); got != "bcagent" {
		t.Errorf("config.json belongs to %s, want bcagent", got)
	}
	// (status exits 1 until a check has succeeded: no repository serves here.)
	if out, _ := exec.Command("runuser", "-u", "bcagent", "--", "/usr/bin/bcagent", "--state", "/var/lib/bcagent", "status", "--json").Output(); !strings.Contains(string(out), `"id": "DEB-TEST"`) {
		t.Errorf("bcagent status --json after init: %s", out)
	}

	// Remove: the programs go, the state and the conffile stay.
	run(t, "dpkg", "-r", "bcagent", "bcpublish", "bcfleet")
	for _, gone := range []string{"/usr/bin/bcagent", "/usr/bin/bcpublish", "/usr/bin/bcfleet", "/usr/lib/systemd/system/bcagent.service", "/usr/share/man/man1/bcagent.1.gz"} {
		if exists(gone) {
			t.Errorf("dpkg -r left %s", gone)
		}
	}
	for _, kept := range []string{"/var/lib/bcagent/config.json", "/etc/default/bcagent"} {
		if !exists(kept) {
			t.Errorf("dpkg -r removed %s (only a purge may)", kept)
		}
	}
	if got := run(t, "dpkg-query", "-W", "-f", "${db:Status-Status}", "bcagent"); got != "config-files" {
		t.Errorf("after dpkg -r, bcagent is %q, want config-files", got)
	}

	// Purge: nothing left, the user gone.
	run(t, "dpkg", "--purge", "bcagent", "bcpublish", "bcfleet")
	for _, gone := range []string{"/var/lib/bcagent", "/etc/default/bcagent"} {
		if exists(gone) {
			t.Errorf("dpkg --purge left %s", gone)
		}
	}
	if _, err := user.Lookup("bcagent"); err == nil {
		t.Error("dpkg --purge left the bcagent user")
	}
	if exec.Command("dpkg-query", "-W", "bcagent").Run() == nil {
		if got := run(t, "dpkg-query", "-W", "-f", "${db:Status-Status}", "bcagent"); got != "not-installed" {
			t.Errorf("after dpkg --purge, bcagent is %q", got)
		}
	}
}
