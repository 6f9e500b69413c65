package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// packageVersions runs packaging/version.sh VERSION in dir: the Debian
// version and the MSI ProductVersion, or its error.
func packageVersions(t *testing.T, dir, version string) (deb, msi string, err error) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(root(t), "packaging", "version.sh"), version)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", &versionError{err, stderr.String()}
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("version.sh %s printed %q, want DEBVERSION MSIVERSION", version, out)
	}
	return f[0], f[1], nil
}

type versionError struct {
	err    error
	stderr string
}

func (e *versionError) Error() string { return e.err.Error() + ": " + e.stderr }

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testutil.MissingTool(t, name+" is missing (make deps)")
	}
}

// debLess is dpkg --compare-versions a lt b.
func debLess(t *testing.T, a, b string) bool {
	t.Helper()
	err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return err == nil
}

// msiCompare compares two ProductVersions as Windows Installer does for
// upgrades: the first three fields, as numbers.
func msiCompare(t *testing.T, a, b string) int {
	t.Helper()
	fa, fb := strings.Split(a, "."), strings.Split(b, ".")
	if len(fa) != 3 || len(fb) != 3 {
		t.Fatalf("MSI versions %s, %s: want three fields", a, b)
	}
	for i, limit := range []int{255, 255, 65535} {
		x, errx := strconv.Atoi(fa[i])
		y, erry := strconv.Atoi(fb[i])
		if errx != nil || erry != nil || x > limit || y > limit {
			t.Fatalf("MSI versions %s, %s: field %d is not a number up to %d", a, b, i+1, limit)
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// TestPackageVersion: the versions of git describe's output, in the order
// apt (dpkg --compare-versions) and Windows Installer upgrade them: a
// build after a tag after the tag and before the next release.
func TestPackageVersion(t *testing.T) {
	needTool(t, "dpkg")
	// In upgrade order; same: the same commit as the one before (a dirty
	// tree), so the same ProductVersion; pre: a pre-release, whose MSI
	// version is its release's (docs/operations.md: not ordered against
	// the release's, so left out of the MSI order).
	cases := []struct {
		version, deb, msi string
		same, pre         bool
	}{
		{"v1.2.0-rc1", "1.2.0~rc1", "1.2.0", false, true},
		{"v1.2.0-rc1-2-gabc1234", "1.2.0~rc1+2.gabc1234", "1.2.2", false, true},
		{"v1.2.0", "1.2.0", "1.2.0", false, false},
		{"v1.2.0-dirty", "1.2.0+0.dirty", "1.2.0", true, false},
		{"v1.2.0-3-gabc1234", "1.2.0+3.gabc1234", "1.2.3", false, false},
		{"v1.2.0-3-gabc1234-dirty", "1.2.0+3.gabc1234.dirty", "1.2.3", true, false},
		{"v1.2.0-12-g0def567", "1.2.0+12.g0def567", "1.2.12", false, false},
		{"v1.2.0-999-g0def567", "1.2.0+999.g0def567", "1.2.999", false, false},
		{"v1.2.1-rc2-2-gfff0000", "1.2.1~rc2+2.gfff0000", "1.2.1002", false, true},
		{"v1.2.1", "1.2.1", "1.2.1000", false, false},
		{"1.2.1-1-gabcdef0", "1.2.1+1.gabcdef0", "1.2.1001", false, false},
		{"v1.2.65", "1.2.65", "1.2.65000", false, false},
		{"v1.2.65-535-gabc1234", "1.2.65+535.gabc1234", "1.2.65535", false, false},
		{"v1.3.0", "1.3.0", "1.3.0", false, false},
		{"v2.0.0-1-g1234567", "2.0.0+1.g1234567", "2.0.1", false, false},
		{"v255.255.0", "255.255.0", "255.255.0", false, false},
	}
	var prevDeb, prevMSI string
	for _, c := range cases {
		deb, msi, err := packageVersions(t, root(t), c.version)
		if err != nil {
			t.Errorf("%s: %v", c.version, err)
			continue
		}
		if deb != c.deb || msi != c.msi {
			t.Errorf("%s: Debian %s, MSI %s; want %s, %s", c.version, deb, msi, c.deb, c.msi)
		}
		if prevDeb != "" && !debLess(t, prevDeb, deb) {
			t.Errorf("dpkg: %s does not sort after %s: apt would not upgrade to it", deb, prevDeb)
		}
		prevDeb = deb
		if c.pre {
			continue
		}
		if prevMSI != "" {
			switch cmp := msiCompare(t, prevMSI, msi); {
			case c.same && cmp != 0:
				t.Errorf("MSI %s (%s) after %s: want the same ProductVersion", msi, c.version, prevMSI)
			case !c.same && cmp >= 0:
				t.Errorf("MSI %s (%s) is not above %s: msiexec would not upgrade to it", msi, c.version, prevMSI)
			}
		}
		prevMSI = msi
	}

	// What does not fit an MSI ProductVersion, or is no version at all:
	// a one-line error, not a package that sorts wrong.
	for _, v := range []string{"v1.2.66", "v1.2.0-1000-gabc1234", "v1.2.65-536-gabc1234", "v256.0.0", "v1.256.0",
		"dev", "v1.2", "v1.2_3.0", "1.2.0 beta", ""} {
		deb, msi, err := packageVersions(t, root(t), v)
		if err == nil {
			t.Errorf("%q: Debian %s, MSI %s; want an error", v, deb, msi)
			continue
		}
		if msg := strings.TrimSuffix(err.(*versionError).stderr, "\n"); msg == "" || strings.Contains(msg, "\n") {
			t.Errorf("%q: error %q, want one line", v, msg)
		}
	}
}

// TestPackageVersionGit: git describe of a real repository, untagged and
// tagged: every later commit sorts after the one before.
func TestPackageVersionGit(t *testing.T) {
	needTool(t, "dpkg")
	needTool(t, "git")
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "tag.gpgSign=false", "-c", "commit.gpgSign=false"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	var prevDeb, prevMSI string
	step := func(wantDeb, wantMSI string) {
		t.Helper()
		described := git("describe", "--tags", "--always", "--dirty")
		head := git("rev-parse", "--short", "HEAD")
		wantDeb = strings.ReplaceAll(wantDeb, "HASH", head)
		deb, msi, err := packageVersions(t, dir, described)
		if err != nil {
			t.Fatalf("%s: %v", described, err)
		}
		if deb != wantDeb || msi != wantMSI {
			t.Errorf("%s: Debian %s, MSI %s; want %s, %s", described, deb, msi, wantDeb, wantMSI)
		}
		if prevDeb != "" && (!debLess(t, prevDeb, deb) || msiCompare(t, prevMSI, msi) >= 0) {
			t.Errorf("%s: %s (MSI %s) does not sort after %s (MSI %s)", described, deb, msi, prevDeb, prevMSI)
		}
		prevDeb, prevMSI = deb, msi
	}
	git("commit", "-q", "--allow-empty", "-m", "one")
	step("0.0.0+1.gHASH", "0.0.1")
	git("commit", "-q", "--allow-empty", "-m", "two")
	step("0.0.0+2.gHASH", "0.0.2")
	git("tag", "v0.1.0")
	step("0.1.0", "0.1.0")
	git("commit", "-q", "--allow-empty", "-m", "three")
	step("0.1.0+1.gHASH", "0.1.1")
	git("commit", "-q", "--allow-empty", "-m", "four")
	step("0.1.0+2.gHASH", "0.1.2")
	git("tag", "v0.1.1")
	step("0.1.1", "0.1.1000")

	// A hash that is not a commit here has no count: an error, not 0.
	if deb, msi, err := packageVersions(t, dir, "abcdef1"); err == nil {
		t.Errorf("abcdef1 (no such commit): Debian %s, MSI %s; want an error", deb, msi)
	}
}

// TestPackagesOutRefused: packages.sh empties --out first, so it refuses a
// folder of someone else's files (or a file) before it builds anything,
// and reuses one it made.
func TestPackagesOutRefused(t *testing.T) {
	script := filepath.Join(root(t), "scripts", "packages.sh")
	packages := func(out string, args ...string) (string, error) {
		cmd := exec.Command("bash", append([]string{script, "--out", out}, args...)...)
		cmd.Dir = root(t)
		cmd.Env = append(os.Environ(), "VERSION=v1.4.2", "SOURCE_DATE_EPOCH=1767225600")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		return stderr.String(), err
	}

	home := t.TempDir()
	precious := filepath.Join(home, "thesis.tex")
	if err := os.WriteFile(precious, []byte("years of work"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{home, precious} {
		stderr, err := packages(out)
		if err == nil {
			t.Errorf("packages.sh --out %s: no error", out)
		}
		if msg := strings.TrimSuffix(stderr, "\n"); !strings.HasPrefix(msg, "packages.sh: --out "+out) || strings.Contains(msg, "\n") {
			t.Errorf("packages.sh --out %s: stderr %q, want one line about --out", out, stderr)
		}
		if b, err := os.ReadFile(precious); err != nil || string(b) != "years of work" {
			t.Fatalf("packages.sh --out %s touched %s: %q, %v", out, precious, b, err)
		}
		if entries, _ := os.ReadDir(home); len(entries) != 1 {
			t.Errorf("packages.sh --out %s left %v in %s", out, entries, home)
		}
	}

	// A folder it made: emptied and filled again. --only msi with a
	// Linux platform builds no package, only SHA256SUMS.
	dist := t.TempDir()
	if stderr, err := packages(dist, "--only", "msi", "--platform", "linux-amd64"); err != nil {
		t.Fatalf("packages.sh --out (empty folder): %v\n%s", err, stderr)
	}
	old := filepath.Join(dist, "bcagent_1.4.1_amd64.deb")
	if err := os.WriteFile(old, []byte("an older build"), 0o644); err != nil {
		t.Fatal(err)
	}
	if stderr, err := packages(dist, "--only", "msi", "--platform", "linux-amd64"); err != nil {
		t.Fatalf("packages.sh --out (a folder it made): %v\n%s", err, stderr)
	}
	if exists(old) {
		t.Errorf("%s is still there: the folder was not emptied", old)
	}
	if !exists(filepath.Join(dist, ".bcupdate-packages")) {
		t.Errorf("no marker .bcupdate-packages in %s", dist)
	}
	if sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS")); err != nil || len(sums) != 0 {
		t.Errorf("SHA256SUMS = %q, %v; want empty (the marker is not a package)", sums, err)
	}
}
