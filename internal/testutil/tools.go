package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// RequireToolsEnv, set to 1 (as .ci/run does), turns a missing or too old
// external tool from a skip into a failure, so that CI never quietly skips.
const RequireToolsEnv = "BCUPDATE_REQUIRE_TOOLS"

// A Tool is an external program tests run. `make deps` (scripts/deps.sh)
// installs each at least at Min; a test keeps the two lists in step.
type Tool struct {
	Name string
	// Min is the least version the tests work with ("": any version).
	Min string
	// Why names what needs Min.
	Why string
	// VersionArgs ask the tool for its version; nil: it cannot say.
	VersionArgs []string
}

// Tools are the external programs the tests use, by name.
var Tools = map[string]Tool{
	// -TSA-certs, -TSA-key and -TSA-time came in 2.7, -ignore-cdp in 2.8
	// (osslsigncode's NEWS.md); Debian 12 ships 2.5, bookworm-backports 2.9.
	"osslsigncode": {Name: "osslsigncode", Min: "2.8", Why: "-TSA-certs and -ignore-cdp", VersionArgs: []string{"--version"}},
	"openssl":      {Name: "openssl", VersionArgs: []string{"version"}},
	"wixl":         {Name: "wixl", VersionArgs: []string{"--version"}},
	"bsdiff":       {Name: "bsdiff"},
	"wrk":          {Name: "wrk", VersionArgs: []string{"--version"}},
	"nginx":        {Name: "nginx", VersionArgs: []string{"-v"}},
	"faketime":     {Name: "faketime", VersionArgs: []string{"--version"}},
	// The dashboard's browser tests (fleet/web) drive it with chromedp.
	"chromium": {Name: "chromium", VersionArgs: []string{"--version"}},
	// The completion scripts' tests (internal/clitest) run them in each shell.
	"zsh":  {Name: "zsh", VersionArgs: []string{"--version"}},
	"fish": {Name: "fish", VersionArgs: []string{"--version"}},
	// The MSI's tests (packaging) read its tables with msitools' msiinfo.
	"msiinfo": {Name: "msiinfo", VersionArgs: []string{"--version"}},
}

// MissingTool skips the test with msg, which should say what to install
// (`make deps`), or fails it when BCUPDATE_REQUIRE_TOOLS=1.
func MissingTool(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(RequireToolsEnv) == "1" {
		t.Fatalf("%s (%s=1: a missing tool is a failure)", msg, RequireToolsEnv)
		return
	}
	t.Skip(msg)
}

// NeedTools checks each tool with NeedTool.
func NeedTools(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if NeedTool(t, name) == "" {
			return
		}
	}
}

// NeedTool returns the path of an external tool of Tools, at least at its
// Min. When the tool is missing or too old, the test is skipped with a
// message that says so and names `make deps` (failed instead with
// BCUPDATE_REQUIRE_TOOLS=1), and NeedTool returns "".
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	tool, ok := Tools[name]
	if !ok {
		t.Fatalf("testutil.NeedTool: %s is not in testutil.Tools (add it there and to scripts/deps.sh)", name)
		return ""
	}
	r := lookTool(tool)
	if r.problem != "" {
		MissingTool(t, r.problem)
		return ""
	}
	return r.path
}

type toolResult struct {
	path, version, problem string
}

var toolCache sync.Map // name and PATH -> toolResult

// lookTool finds the tool on PATH (or in /usr/sbin, where Debian puts
// nginx, for users whose PATH lacks it) and checks its version, once per
// tool and PATH.
func lookTool(tool Tool) toolResult {
	key := tool.Name + "\x00" + os.Getenv("PATH")
	if r, ok := toolCache.Load(key); ok {
		return r.(toolResult)
	}
	r := checkTool(tool)
	toolCache.Store(key, r)
	return r
}

func checkTool(tool Tool) toolResult {
	need := ""
	if tool.Min != "" {
		need = fmt.Sprintf(" (need >= %s for %s)", tool.Min, tool.Why)
	}
	path, err := exec.LookPath(tool.Name)
	if err != nil {
		sbin := filepath.Join("/usr/sbin", tool.Name)
		if fi, serr := os.Stat(sbin); serr == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			path, err = sbin, nil
		}
	}
	if err != nil {
		return toolResult{problem: fmt.Sprintf("%s is not installed%s: run make deps", tool.Name, need)}
	}
	r := toolResult{path: path}
	if tool.VersionArgs == nil {
		return r
	}
	// Some tools print their version with a non-zero exit (wrk) or on
	// stderr (nginx): the output is what counts.
	out, _ := exec.Command(path, tool.VersionArgs...).CombinedOutput()
	r.version = ParseVersion(string(out))
	if tool.Min == "" {
		return r
	}
	if r.version == "" {
		r.problem = fmt.Sprintf("cannot tell the version of %s from `%s %s` (%q)%s: run make deps",
			path, tool.Name, strings.Join(tool.VersionArgs, " "), firstLine(string(out)), need)
		return r
	}
	if CompareVersions(r.version, tool.Min) < 0 {
		r.problem = fmt.Sprintf("%s %s is too old%s: run make deps", tool.Name, r.version, need)
		if path != filepath.Join("/usr/bin", tool.Name) {
			r.problem += " (or put a newer one ahead of " + path + " on PATH)"
		}
	}
	return r
}

var versionRE = regexp.MustCompile(`[0-9]+(\.[0-9]+)+`)

// ParseVersion returns the first dotted number in a tool's version output
// ("osslsigncode 2.9, using:" is 2.9, "nginx version: nginx/1.22.1" is
// 1.22.1), or "".
func ParseVersion(out string) string {
	return versionRE.FindString(out)
}

// CompareVersions compares dotted numbers (a leading v is ignored): -1, 0
// or +1; missing components count as 0 (2.8 == 2.8.0).
func CompareVersions(a, b string) int {
	as := strings.Split(strings.TrimPrefix(a, "v"), ".")
	bs := strings.Split(strings.TrimPrefix(b, "v"), ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x = leadingNumber(as[i])
		}
		if i < len(bs) {
			y = leadingNumber(bs[i])
		}
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
}

// leadingNumber is the number a version component starts with ("0-rc1"
// is 0).
func leadingNumber(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, _ := strconv.Atoi(s[:i])
	return n
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
