package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/signer"
)

// msiTable is msiinfo export's rows of table (the three header lines
// dropped), each split at tabs.
func msiTable(t *testing.T, msi, table string) [][]string {
	t.Helper()
	var rows [][]string
	for i, line := range strings.Split(run(t, "msiinfo", "export", msi, table), "\n") {
		if i < 3 || strings.TrimSpace(line) == "" {
			continue
		}
		rows = append(rows, strings.Split(strings.TrimRight(line, "\r"), "\t"))
	}
	return rows
}

func row(rows [][]string, key string) []string {
	for _, r := range rows {
		if r[0] == key {
			return r
		}
	}
	return nil
}

// TestMSI builds the bcagent MSI signed with the example PKI, reads its
// tables with msiinfo, verifies its signature with the project's own
// Authenticode verifier, and publishes it as an installer release.
func TestMSI(t *testing.T) {
	testutil.NeedTools(t, "wixl", "msiinfo", "osslsigncode", "faketime")
	pki := filepath.Join(root(t), "keys.example", "pki")
	t.Setenv("SIGN_CERT", filepath.Join(pki, "chain.pem"))
	t.Setenv("SIGN_KEY", filepath.Join(pki, "leaf.key"))
	dist := buildPackages(t, "v1.4.2", "--only", "msi", "--platform", "windows-amd64")
	msi := filepath.Join(dist, "bcagent_1.4.2_windows-amd64.msi")

	tables := strings.Fields(run(t, "msiinfo", "tables", msi))
	for _, want := range []string{"File", "Component", "ServiceInstall", "ServiceControl", "Upgrade", "Property", "CustomAction", "InstallExecuteSequence", "Registry", "LaunchCondition"} {
		if !slices.Contains(tables, want) {
			t.Errorf("the MSI has no %s table (has %v)", want, tables)
		}
	}
	if f := row(msiTable(t, msi, "File"), "bcagentExe"); f == nil || f[2] != "bcagent.exe" {
		t.Errorf("File: bcagent.exe row %v", f)
	}
	// Component: 64-bit (attribute 256) under Program Files (64-bit).
	if c := row(msiTable(t, msi, "Component"), "AgentExe"); c == nil || c[2] != "INSTALLDIR" || c[3] != "256" {
		t.Errorf("Component AgentExe = %v, want directory INSTALLDIR, attributes 256 (64-bit)", c)
	}
	dirs := msiTable(t, msi, "Directory")
	if d := row(dirs, "INSTALLDIR"); d == nil || d[1] != "VendorDir" || row(dirs, "VendorDir")[1] != "ProgramFiles64Folder" {
		t.Errorf("Directory: INSTALLDIR %v is not under ProgramFiles64Folder", d)
	}
	// ServiceInstall: own process (16), automatic (2), LocalSystem, run.
	if s := row(msiTable(t, msi, "ServiceInstall"), "AgentService"); s == nil || s[1] != "bcagent" || s[3] != "16" || s[4] != "2" ||
		s[8] != "LocalSystem" || s[10] != `--state "[CommonAppDataFolder]BeckmanConnect\bcagent" run` {
		t.Errorf("ServiceInstall = %q", s)
	}
	// ServiceControl: stop at install and uninstall, delete at uninstall
	// (2|32|128), and wait.
	if s := row(msiTable(t, msi, "ServiceControl"), "AgentServiceStop"); s == nil || s[1] != "bcagent" || s[2] != "162" || s[4] != "1" {
		t.Errorf("ServiceControl = %q, want bcagent, events 162, wait", s)
	}
	// Upgrade: the fixed upgrade code; older versions removed, newer refused.
	props := msiTable(t, msi, "Property")
	prop := func(k string) string {
		if r := row(props, k); r != nil {
			return r[1]
		}
		return ""
	}
	// v1.4.2 is ProductVersion 1.4.2000 (packaging/version.sh: room for
	// the builds after the tag, TestMSIVersionAfterTag).
	const upgradeCode = "{6F1D3A52-7C1B-4E0F-9B7A-2D5C8E4A9B01}"
	if prop("UpgradeCode") != upgradeCode || prop("ProductVersion") != "1.4.2000" || prop("ALLUSERS") != "1" {
		t.Errorf("Property: UpgradeCode %q, ProductVersion %q, ALLUSERS %q", prop("UpgradeCode"), prop("ProductVersion"), prop("ALLUSERS"))
	}
	var older bool
	for _, u := range msiTable(t, msi, "Upgrade") {
		if u[0] == upgradeCode && u[1] == "0.0.0" && u[2] == "1.4.2000" && u[len(u)-1] == "OLDVERSIONFOUND" {
			older = true
		}
	}
	if !older {
		t.Errorf("Upgrade: no row that replaces versions before 1.4.2: %v", msiTable(t, msi, "Upgrade"))
	}
	// The init custom action: deferred (0x400), not impersonated (0x800),
	// bcagent.exe with every property on a flag bcagent init has.
	ca := row(msiTable(t, msi, "CustomAction"), "AgentInit")
	if ca == nil {
		t.Fatal("no AgentInit custom action")
	}
	typ, _ := strconv.Atoi(ca[1])
	if typ&0x3f != 18 || typ&0x400 == 0 || typ&0x800 == 0 || ca[2] != "bcagentExe" {
		t.Errorf("AgentInit: type %d source %s, want an exe in bcagentExe, deferred, not impersonated", typ, ca[2])
	}
	initHelp := bcagentHelp(t, "init")
	for prop, flag := range map[string]string{"REPOURL": "--repo-url", "ROOTFILE": "--root", "TRUSTDIR": "--trust", "COMPONENTS": "--component",
		"DEVICEID": "--device-id", "DEVICEMODEL": "--device-model", "CHANNEL": "--channel"} {
		if !strings.Contains(ca[3], flag+` "[`+prop+`]"`) {
			t.Errorf("AgentInit does not pass %s as %s: %s", prop, flag, ca[3])
		}
		if !strings.Contains(initHelp, flag+" ") {
			t.Errorf("bcagent init has no %s (the MSI passes %s to it)", flag, prop)
		}
	}
	// The enroll custom action: an exe in bcagentExe, deferred, not
	// impersonated, its failure ignored (0x40: no update waits for the
	// fleet service); every fleet property on a flag bcagent enroll has,
	// the token from a file, never on the command line (the MSI log
	// shows it).
	ca = row(msiTable(t, msi, "CustomAction"), "AgentEnroll")
	if ca == nil {
		t.Fatal("no AgentEnroll custom action")
	}
	typ, _ = strconv.Atoi(ca[1])
	if typ&0x3f != 18 || typ&0x400 == 0 || typ&0x800 == 0 || typ&0x40 == 0 || ca[2] != "bcagentExe" {
		t.Errorf("AgentEnroll: type %d source %s, want an exe in bcagentExe, deferred, not impersonated, return ignored", typ, ca[2])
	}
	if !strings.Contains(ca[3], ` enroll `) || strings.Contains(ca[3], "--token ") {
		t.Errorf("AgentEnroll does not run bcagent enroll, or passes the token itself: %s", ca[3])
	}
	enrollHelp := bcagentHelp(t, "enroll")
	enrollProps := map[string]string{"FLEETURL": "--fleet", "ENROLLTOKENFILE": "--token-file", "ENROLLEMAIL": "--email", "ENROLLNAME": "--name",
		"INSTRUMENTMODEL": "--instrument-model", "INSTRUMENTID": "--instrument-id", "INSTRUMENTSERIAL": "--serial"}
	for prop, flag := range enrollProps {
		if !strings.Contains(ca[3], flag+` "[`+prop+`]"`) {
			t.Errorf("AgentEnroll does not pass %s as %s: %s", prop, flag, ca[3])
		}
		if !strings.Contains(enrollHelp, flag+" ") {
			t.Errorf("bcagent enroll has no %s (the MSI passes %s to it)", flag, prop)
		}
	}
	// A first install with FLEETURL needs every fleet property (and
	// REPOURL: enroll needs init), or it stops before it installs anything.
	var fleetCond bool
	for _, lc := range msiTable(t, msi, "LaunchCondition") {
		if strings.Contains(lc[0], "NOT FLEETURL") && strings.Contains(lc[0], "REPOURL") {
			fleetCond = true
			for prop := range enrollProps {
				if !strings.Contains(lc[0], prop) {
					t.Errorf("the FLEETURL launch condition does not want %s: %s", prop, lc[0])
				}
			}
		}
	}
	if !fleetCond {
		t.Errorf("no launch condition for FLEETURL without the other properties: %v", msiTable(t, msi, "LaunchCondition"))
	}

	// The event source bcagent in the Application log, as bcagent service
	// install registers it (InstallAsEventCreate): HKLM (root 2), the
	// message file REG_EXPAND_SZ ("#%"), all three event types.
	const sourceKey = `SYSTEM\CurrentControlSet\Services\EventLog\Application\bcagent`
	values := map[string]string{}
	for _, r := range msiTable(t, msi, "Registry") {
		if r[1] == "2" && r[2] == sourceKey && r[5] == "AgentExe" {
			values[r[3]] = r[4]
		}
	}
	for name, want := range map[string]string{"EventMessageFile": `#%%SystemRoot%\System32\EventCreate.exe`, "TypesSupported": "#7", "CustomSource": "#1"} {
		if values[name] != want {
			t.Errorf("Registry: %s\\%s = %q, want %q (all rows under the key: %v)", sourceKey, name, values[name], want, values)
		}
	}

	// Sequence: the old version removed before anything is installed, init
	// and enroll after the files and before the services start.
	seq := map[string]int{}
	conds := map[string]string{}
	for _, r := range msiTable(t, msi, "InstallExecuteSequence") {
		seq[r[0]], _ = strconv.Atoi(r[len(r)-1])
		conds[r[0]] = r[1]
	}
	if c := conds["AgentEnroll"]; !strings.Contains(c, "FLEETURL AND REPOURL") || !strings.Contains(c, "NOT OLDVERSIONFOUND") || !strings.Contains(c, "NOT REMOVE") {
		t.Errorf("AgentEnroll runs on %q, want a first install with FLEETURL and REPOURL", c)
	}
	for _, o := range [][2]string{{"InstallValidate", "RemoveExistingProducts"}, {"RemoveExistingProducts", "InstallInitialize"},
		{"InstallFiles", "AgentInit"}, {"InstallServices", "AgentInit"}, {"AgentInit", "AgentEnroll"}, {"AgentEnroll", "StartServices"},
		{"StartServices", "AgentStart"}, {"SetCmdExe", "AgentPurge"}, {"RemoveFiles", "AgentPurge"}} {
		if seq[o[0]] == 0 || seq[o[1]] == 0 || seq[o[0]] >= seq[o[1]] {
			t.Errorf("InstallExecuteSequence: %s (%d) must come before %s (%d)", o[0], seq[o[0]], o[1], seq[o[1]])
		}
	}

	// The signature, with the verifier the agent uses.
	trust, err := signer.LoadTrust(filepath.Join(root(t), "keys.example", "trust"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(msi)
	if err != nil {
		t.Fatal(err)
	}
	res, err := trust.VerifyAuthenticode(f)
	f.Close()
	if err != nil {
		t.Fatalf("VerifyAuthenticode: %v", err)
	}
	if res.Format != "Authenticode (MSI)" {
		t.Errorf("signature format %q", res.Format)
	}

	// Publishable as an installer release of the agent (release add
	// verifies the signature against the trust directory first).
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "./cmd/bcpublish")
	build.Dir = root(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build bcpublish: %v\n%s", err, out)
	}
	bcpublish := filepath.Join(bin, "bcpublish")
	work := t.TempDir()
	run(t, bcpublish, "keys", "generate", "--out", filepath.Join(work, "keys"))
	run(t, bcpublish, "init", "--repo", filepath.Join(work, "repo"), "--keys", filepath.Join(work, "keys"))
	run(t, bcpublish, "release", "add", "--repo", filepath.Join(work, "repo"), "--keys", filepath.Join(work, "keys"),
		"--trust", filepath.Join(root(t), "keys.example", "trust"), "--component", "bcagent", "--version", "1.4.2",
		"--platform", "windows-amd64", "--file", msi, "--install", "installer")
	list := run(t, bcpublish, "release", "list", "--repo", filepath.Join(work, "repo"), "--json")
	for _, want := range []string{`"bcagent/windows-amd64/1.4.2/bcagent_1.4.2_windows-amd64.msi"`, `"install": "installer"`} {
		if !strings.Contains(list, want) {
			t.Errorf("release list --json lacks %s:\n%s", want, list)
		}
	}
}

// TestMSIVersionAfterTag: the MSI of a build after a tag is a later
// product than the tag's (a higher ProductVersion, its own ProductCode),
// so msiexec upgrades the tag's to it, and it to the next release's.
func TestMSIVersionAfterTag(t *testing.T) {
	testutil.NeedTools(t, "wixl", "msiinfo", "faketime")
	type product struct{ version, code, upgradeMax string }
	build := func(version, file string) product {
		t.Helper()
		msi := filepath.Join(buildPackages(t, version, "--only", "msi", "--platform", "windows-amd64"), file)
		props := msiTable(t, msi, "Property")
		var p product
		if r := row(props, "ProductVersion"); r != nil {
			p.version = r[1]
		}
		if r := row(props, "ProductCode"); r != nil {
			p.code = r[1]
		}
		for _, u := range msiTable(t, msi, "Upgrade") {
			if u[len(u)-1] == "OLDVERSIONFOUND" {
				p.upgradeMax = u[2]
			}
		}
		return p
	}
	tag := build("v1.4.2", "bcagent_1.4.2_windows-amd64.msi")
	after := build("v1.4.2-3-gabc1234", "bcagent_1.4.2+3.gabc1234_windows-amd64.msi")
	next := build("v1.4.3", "bcagent_1.4.3_windows-amd64.msi")
	for _, c := range []struct {
		p    product
		want string
	}{{tag, "1.4.2000"}, {after, "1.4.2003"}, {next, "1.4.3000"}} {
		if c.p.version != c.want || c.p.upgradeMax != c.want || c.p.code == "" {
			t.Errorf("ProductVersion %s, replaces versions below %s, ProductCode %q; want %s, below %s, a code",
				c.p.version, c.p.upgradeMax, c.p.code, c.want, c.want)
		}
	}
	if tag.code == after.code || after.code == next.code || tag.code == next.code {
		t.Errorf("ProductCodes %s, %s, %s: want one for each version (a major upgrade)", tag.code, after.code, next.code)
	}
}

// bcagentHelp is `bcagent CMD --help` of this checkout.
func bcagentHelp(t *testing.T, cmd string) string {
	t.Helper()
	c := exec.Command("go", "run", "./cmd/bcagent", cmd, "--help")
	c.Dir = root(t)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("bcagent %s --help: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// TestPackagesReproducible builds this machine's .debs and the MSI twice
// and wants the same bytes (make release-check does all platforms).
func TestPackagesReproducible(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the packages are built on Linux")
	}
	testutil.NeedTools(t, "wixl", "faketime")
	args := []string{"--platform", "linux-" + runtime.GOARCH, "--platform", "windows-amd64"}
	a, b := buildPackages(t, "v2.0.0", args...), buildPackages(t, "v2.0.0", args...)
	sums, err := os.ReadFile(filepath.Join(a, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(sums), "\n"); n != 4 {
		t.Errorf("SHA256SUMS has %d files, want 3 .debs and the MSI:\n%s", n, sums)
	}
	entries, err := os.ReadDir(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		x, _ := os.ReadFile(filepath.Join(a, e.Name()))
		y, err := os.ReadFile(filepath.Join(b, e.Name()))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two builds of the same commit (%v)", e.Name(), err)
		}
	}
}
