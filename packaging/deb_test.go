package packaging

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
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
	if exec.Command("dpkg-query", "-W", "bcfleet").Run() == nil || exists("/var/lib/bcfleet") || exists("/etc/bcfleet") || exists("/usr/bin/bcfleet") {
		testutil.MissingTool(t, "TestDeb: this machine already has a bcfleet (package, /var/lib/bcfleet, /etc/bcfleet or /usr/bin/bcfleet); the test installs and removes its own and will not touch that one")
		return
	}
	if _, err := user.Lookup("bcfleet"); err == nil {
		testutil.MissingTool(t, "TestDeb: this machine already has a bcfleet user; the test would remove it")
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
		// Whatever happened, leave the machine as it was (a purge keeps
		// the fleet's store, key and user: they go by hand).
		_ = exec.Command("dpkg", "--purge", "bcagent", "bcpublish", "bcfleet").Run()
		_ = os.RemoveAll("/var/lib/bcfleet")
		_ = os.RemoveAll("/etc/bcfleet")
		if _, err := user.Lookup("bcfleet"); err == nil {
			_ = exec.Command("userdel", "bcfleet").Run()
		}
	})
	installOut := run(t, "dpkg", "-i", debs["bcagent"], debs["bcpublish"], debs["bcfleet"])

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

	checkFleetInstalled(t, installOut)

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
	for _, gone := range []string{"/usr/bin/bcagent", "/usr/bin/bcpublish", "/usr/bin/bcfleet", "/usr/lib/systemd/system/bcagent.service",
		"/usr/lib/systemd/system/bcfleet.service", "/usr/share/man/man1/bcagent.1.gz"} {
		if exists(gone) {
			t.Errorf("dpkg -r left %s", gone)
		}
	}
	for _, kept := range []string{"/var/lib/bcagent/config.json", "/etc/default/bcagent", "/etc/default/bcfleet", "/var/lib/bcfleet/fleet.db", "/etc/bcfleet/kek"} {
		if !exists(kept) {
			t.Errorf("dpkg -r removed %s (only a purge may)", kept)
		}
	}
	if got := run(t, "dpkg-query", "-W", "-f", "${db:Status-Status}", "bcagent"); got != "config-files" {
		t.Errorf("after dpkg -r, bcagent is %q, want config-files", got)
	}

	// Purge: nothing of the agent left, its user gone; the fleet's
	// configuration gone, its store, key and user kept (said so).
	purgeOut := run(t, "dpkg", "--purge", "bcagent", "bcpublish", "bcfleet")
	for _, gone := range []string{"/var/lib/bcagent", "/etc/default/bcagent", "/etc/default/bcfleet"} {
		if exists(gone) {
			t.Errorf("dpkg --purge left %s", gone)
		}
	}
	if _, err := user.Lookup("bcagent"); err == nil {
		t.Error("dpkg --purge left the bcagent user")
	}
	for _, kept := range []string{"/var/lib/bcfleet/fleet.db", "/etc/bcfleet/kek"} {
		if !exists(kept) {
			t.Errorf("dpkg --purge removed %s: the fleet's store and key are removed only by hand", kept)
		}
	}
	if _, err := user.Lookup("bcfleet"); err != nil {
		t.Error("dpkg --purge removed the bcfleet user, which owns the kept store and key")
	}
	if !strings.Contains(purgeOut, "bcfleet: kept /var/lib/bcfleet") || !strings.Contains(purgeOut, "bcfleet: kept /etc/bcfleet") {
		t.Errorf("dpkg --purge did not say what it kept of bcfleet:\n%s", purgeOut)
	}
	if exec.Command("dpkg-query", "-W", "bcagent").Run() == nil {
		if got := run(t, "dpkg-query", "-W", "-f", "${db:Status-Status}", "bcagent"); got != "not-installed" {
			t.Errorf("after dpkg --purge, bcagent is %q", got)
		}
	}
}

// checkFleetInstalled: the bcfleet package's unit, user, directories and
// conffile, and that the service is not started before it is configured:
// the postinst says so, the unit's ExecConditions fail for the shipped
// /etc/default/bcfleet and pass once it names a store and a key, and (on
// a machine that runs systemd) the unit is enabled and inactive. Then the
// documented first steps, as the bcfleet user: a key, a token.
func checkFleetInstalled(t *testing.T, installOut string) {
	t.Helper()
	unit, err := os.ReadFile("/usr/lib/systemd/system/bcfleet.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ConditionPathExists=/etc/default/bcfleet", "EnvironmentFile=/etc/default/bcfleet", "User=bcfleet",
		"ExecStart=/usr/bin/bcfleet serve", "StateDirectory=bcfleet", "StateDirectoryMode=0700", "UMask=0077", "NoNewPrivileges=true",
		"ProtectSystem=strict", "ProtectHome=true", "PrivateTmp=true", "CapabilityBoundingSet="} {
		if !strings.Contains(string(unit), "\n"+want+"\n") {
			t.Errorf("the installed bcfleet unit lacks %q", want)
		}
	}
	if out, err := exec.Command("systemd-analyze", "verify", "/usr/lib/systemd/system/bcfleet.service").CombinedOutput(); err == nil || len(out) > 0 {
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if line != "" && !strings.Contains(line, "man bcfleet(1)") {
				t.Errorf("systemd-analyze verify bcfleet.service: %s", line)
			}
		}
	}
	if got := run(t, "dpkg-query", "-W", "-f", "${Conffiles}", "bcfleet"); !strings.Contains(got, "/etc/default/bcfleet ") {
		t.Errorf("bcfleet's conffiles = %q, want /etc/default/bcfleet", got)
	}
	for _, d := range []string{"/var/lib/bcfleet", "/etc/bcfleet"} {
		if got := strings.TrimSpace(run(t, "stat", "-c", "%U:%G %a", d)); got != "bcfleet:bcfleet 700" {
			t.Errorf("%s is %s, want bcfleet:bcfleet 700", d, got)
		}
	}
	if !strings.Contains(installOut, "bcfleet: not configured yet, so not started") {
		t.Errorf("the bcfleet postinst did not say it left the service stopped:\n%s", installOut)
	}

	// The unit's ExecConditions, as systemd runs them: each ${VAR} is the
	// value from the EnvironmentFile (empty when unset), one argument.
	conds := regexp.MustCompile(`(?m)^ExecCondition=(\S+) (.*)$`).FindAllStringSubmatch(string(unit), -1)
	if len(conds) == 0 {
		t.Fatal("the bcfleet unit has no ExecCondition: nothing keeps an unconfigured service from starting")
	}
	configured := func(env string) bool {
		t.Helper()
		vars := map[string]string{}
		for _, line := range strings.Split(env, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
				vars[k] = v
			}
		}
		for _, c := range conds {
			var args []string
			for _, a := range strings.Fields(c[2]) {
				args = append(args, os.Expand(strings.Trim(a, `"`), func(k string) string { return vars[k] }))
			}
			if exec.Command(c[1], args...).Run() != nil {
				return false
			}
		}
		return true
	}
	shipped, err := os.ReadFile("/etc/default/bcfleet")
	if err != nil {
		t.Fatal(err)
	}
	if configured(string(shipped)) {
		t.Error("the shipped /etc/default/bcfleet passes the unit's ExecConditions: an unconfigured service would start")
	}
	if !configured(string(shipped) + "\nBCFLEET_DB=sqlite:/var/lib/bcfleet/fleet.db\nBCFLEET_KEK=file:///etc/bcfleet/kek\n") {
		t.Error("a /etc/default/bcfleet with BCFLEET_DB and BCFLEET_KEK does not pass the unit's ExecConditions")
	}
	if exists("/run/systemd/system") {
		if got, _ := exec.Command("systemctl", "is-active", "bcfleet").Output(); strings.TrimSpace(string(got)) == "active" {
			t.Error("bcfleet.service is active before it was configured")
		}
		if got, _ := exec.Command("systemctl", "is-enabled", "bcfleet").Output(); strings.TrimSpace(string(got)) != "enabled" {
			t.Errorf("bcfleet.service is %q, want enabled (it starts at boot once configured)", got)
		}
	}

	// The documented first steps, as the service's user, with its paths.
	run(t, "runuser", "-u", "bcfleet", "--", "/usr/bin/bcfleet", "kek", "generate", "/etc/bcfleet/kek")
	out := run(t, "runuser", "-u", "bcfleet", "--", "env", "BCFLEET_DB=sqlite:/var/lib/bcfleet/fleet.db", "BCFLEET_KEK=file:///etc/bcfleet/kek",
		"/usr/bin/bcfleet", "token", "create", "--site", "deb-test")
	if !strings.Contains(out, "bcf_") {
		t.Errorf("bcfleet token create as the bcfleet user: %s", out)
	}
}
