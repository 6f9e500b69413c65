package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for out, want := range map[string]string{
		"osslsigncode 2.9, using:\n\tOpenSSL 3.0.13 30 Jan 2024 (Library: OpenSSL 3.0.19 27 Jan 2026)": "2.9",
		"osslsigncode 2.5, using:\n\tOpenSSL 3.0.11 19 Sep 2023":                                       "2.5",
		"OpenSSL 3.0.19 27 Jan 2026 (Library: OpenSSL 3.0.19 27 Jan 2026)":                             "3.0.19",
		"0.101\n": "0.101",
		"wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer":                    "4.1.0",
		"nginx version: nginx/1.22.1\n":                                                   "1.22.1",
		"\nfaketime: Version 0.9.10\nFor usage information please use 'faketime --help'.": "0.9.10",
		"Version  : git\nBuild    : norev":                                                "",
	} {
		if got := ParseVersion(out); got != want {
			t.Errorf("ParseVersion(%q) = %q, want %q", out, got, want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"2.5", "2.8", -1},
		{"2.9", "2.8", 1},
		{"2.8", "2.8.0", 0},
		{"2.10", "2.9", 1},
		{"v1.8.0", "v1.8.0", 0},
		{"v1.7.9", "1.8", -1},
		{"1.8.0-rc1", "1.8", 0},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// recorder is a testing.TB that records a skip or a failure instead of
// ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Skip(args ...any)             { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Skipf(f string, args ...any)  { r.skipped = fmt.Sprintf(f, args...) }
func (r *recorder) SkipNow()                     { r.skipped = "SkipNow" }
func (r *recorder) Fatal(args ...any)            { r.failed = fmt.Sprint(args...) }
func (r *recorder) Fatalf(f string, args ...any) { r.failed = fmt.Sprintf(f, args...) }
func (r *recorder) FailNow()                     { r.failed = "FailNow" }

// fakeTool puts a shell script named name that prints versionOut on PATH,
// ahead of everything else.
func fakeTool(t *testing.T, name, versionOut string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("fake tools are shell scripts")
	}
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\ncat <<'EOF'\n%s\nEOF\n", versionOut)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return filepath.Join(dir, name)
}

// A Debian 12 osslsigncode (2.5, without -TSA-certs) is skipped with what
// to install, or fails the test under BCUPDATE_REQUIRE_TOOLS=1; 2.9 runs.
func TestNeedToolVersion(t *testing.T) {
	const old = "osslsigncode 2.5, using:\n\tOpenSSL 3.0.11 19 Sep 2023 (Library: OpenSSL 3.0.11 19 Sep 2023)\n\tlibcurl/7.88.1"
	t.Run("too old", func(t *testing.T) {
		t.Setenv(RequireToolsEnv, "")
		p := fakeTool(t, "osslsigncode", old)
		r := &recorder{TB: t}
		if got := NeedTool(r, "osslsigncode"); got != "" {
			t.Errorf("NeedTool = %q for osslsigncode 2.5", got)
		}
		want := "osslsigncode 2.5 is too old (need >= 2.8 for -TSA-certs and -ignore-cdp): run make deps (or put a newer one ahead of " + p + " on PATH)"
		if r.skipped != want || r.failed != "" {
			t.Errorf("skipped %q, failed %q; want skipped %q", r.skipped, r.failed, want)
		}
	})
	t.Run("too old, required", func(t *testing.T) {
		t.Setenv(RequireToolsEnv, "1")
		fakeTool(t, "osslsigncode", old)
		r := &recorder{TB: t}
		NeedTool(r, "osslsigncode")
		if r.skipped != "" || !strings.Contains(r.failed, "osslsigncode 2.5 is too old (need >= 2.8 for -TSA-certs and -ignore-cdp): run make deps") ||
			!strings.Contains(r.failed, "BCUPDATE_REQUIRE_TOOLS=1") {
			t.Errorf("skipped %q, failed %q; want a failure", r.skipped, r.failed)
		}
	})
	t.Run("new enough", func(t *testing.T) {
		t.Setenv(RequireToolsEnv, "1")
		p := fakeTool(t, "osslsigncode", "osslsigncode 2.9, using:\n\tOpenSSL 3.0.13 30 Jan 2024")
		r := &recorder{TB: t}
		if got := NeedTool(r, "osslsigncode"); got != p || r.skipped != "" || r.failed != "" {
			t.Errorf("NeedTool = %q (skipped %q, failed %q), want %s", got, r.skipped, r.failed, p)
		}
	})
	t.Run("no version", func(t *testing.T) {
		t.Setenv(RequireToolsEnv, "")
		fakeTool(t, "osslsigncode", "Unknown option: --version")
		r := &recorder{TB: t}
		NeedTool(r, "osslsigncode")
		if !strings.HasPrefix(r.skipped, "cannot tell the version of ") || !strings.HasSuffix(r.skipped, "(need >= 2.8 for -TSA-certs and -ignore-cdp): run make deps") {
			t.Errorf("skipped %q", r.skipped)
		}
	})
	t.Run("missing", func(t *testing.T) {
		t.Setenv(RequireToolsEnv, "")
		t.Setenv("PATH", t.TempDir())
		for name, want := range map[string]string{
			"osslsigncode": "osslsigncode is not installed (need >= 2.8 for -TSA-certs and -ignore-cdp): run make deps",
			"bsdiff":       "bsdiff is not installed: run make deps",
		} {
			r := &recorder{TB: t}
			NeedTool(r, name)
			if r.skipped != want || r.failed != "" {
				t.Errorf("skipped %q, failed %q; want skipped %q", r.skipped, r.failed, want)
			}
		}
		r := &recorder{TB: t}
		NeedTools(r, "bsdiff", "osslsigncode")
		if r.skipped != "bsdiff is not installed: run make deps" {
			t.Errorf("NeedTools: skipped %q, want the first missing tool", r.skipped)
		}
	})
	t.Run("unknown tool", func(t *testing.T) {
		r := &recorder{TB: t}
		NeedTool(r, "no-such-tool")
		if !strings.Contains(r.failed, "not in testutil.Tools") {
			t.Errorf("failed %q", r.failed)
		}
	})
}

// scripts/deps.sh (make deps) installs every tool of Tools, at least at
// its Min.
func TestDepsScriptAgrees(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "scripts", "deps.sh"))
	if err != nil {
		t.Fatal(err)
	}
	script := string(b)
	for name, tool := range Tools {
		if name != tool.Name {
			t.Errorf("Tools[%q].Name = %q", name, tool.Name)
		}
		if !regexp.MustCompile(`(?m)^\s*(tool\s+` + regexp.QuoteMeta(name) + `\s|if path=\$\(command -v ` + regexp.QuoteMeta(name) + ` )`).MatchString(script) {
			t.Errorf("scripts/deps.sh does not check %s", name)
		}
		if tool.Min != "" {
			v := strings.ToUpper(name) + "_MIN=" + tool.Min
			if !strings.Contains(script, "\n"+v+"\n") {
				t.Errorf("scripts/deps.sh lacks %s (testutil.Tools wants %s >= %s)", v, name, tool.Min)
			}
		}
	}
}

// scripts/deps.sh --check reports a Debian 12 osslsigncode as too old
// (and installs nothing: --check only reports).
func TestDepsScriptTooOld(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	fakeTool(t, "osslsigncode", "osslsigncode 2.5, using:\n\tOpenSSL 3.0.11 19 Sep 2023")
	cmd := exec.Command(bash, filepath.Join("..", "..", "scripts", "deps.sh"), "--check")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("deps.sh --check passed with osslsigncode 2.5:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^  osslsigncode +2\.5 .*TOO OLD, need >= 2\.8`).Match(out) ||
		!strings.Contains(string(out), "osslsigncode: 2.5 at ") || !strings.Contains(string(out), "run make deps") {
		t.Errorf("deps.sh --check does not say osslsigncode 2.5 is too old:\n%s", out)
	}
}
