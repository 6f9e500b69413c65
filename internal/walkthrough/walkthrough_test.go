//go:build linux

package walkthrough

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// What the walk-through publishes and the agent must end up with.
const (
	wantComponent = "notification-client"
	wantVersion   = "1.0.0"
)

// runTimeout bounds the whole walk-through (RSA key generation, a build
// of nothing, one release); on a busy two-core machine it takes seconds.
const runTimeout = 5 * time.Minute

// TestWalkthroughRuns runs the marked blocks of docs/operations.md, in
// order, as one `bash -euo pipefail` script in a temporary directory, with
// freshly built bcpublish and bcagent first on PATH, WORK set to a new
// directory and PORT to a free loopback port. The script runs in a process
// group of its own. Then it checks that the agent has the release
// installed and healthy (bcagent status --json, exit 0, and the installed
// program runs), that the walk-through stopped every process it started
// (bcpublish serve included: nothing of its group is left, nothing listens
// on PORT), and it kills whatever is left in any case.
func TestWalkthroughRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries and runs the walk-through; skipped with -short")
	}
	for tool, pkg := range map[string]string{"go": "Go 1.26", "bash": "bash", "openssl": "openssl", "tar": "tar",
		"install": "coreutils", "grep": "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walk-through needs %s on PATH (install %s)", tool, pkg)
		}
	}
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := extractBlocks(string(doc))
	if err != nil {
		t.Fatalf("docs/operations.md: %v", err)
	}

	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	build := exec.Command("go", "build", "-trimpath", "-o", bin+string(filepath.Separator), "./cmd/bcpublish", "./cmd/bcagent")
	build.Dir = root
	build.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	work := filepath.Join(tmp, "work") // the walk-through makes it
	home := filepath.Join(tmp, "home")
	tmpdir := filepath.Join(tmp, "tmp")
	for _, d := range []string{home, tmpdir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	scriptFile := filepath.Join(tmp, "walkthrough.sh")
	if err := os.WriteFile(scriptFile, []byte(script("docs/operations.md", blocks)), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)

	var out bytes.Buffer
	cmd := exec.Command("bash", "-euo", "pipefail", scriptFile)
	cmd.Dir = tmp
	cmd.Env = append(cleanEnv(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"WORK="+work, "PORT="+strconv.Itoa(port), "HOME="+home, "TMPDIR="+tmpdir)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	// Whatever the outcome, nothing of this group outlives the test.
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	timer := time.AfterFunc(runTimeout, func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	err = cmd.Wait()
	timer.Stop()
	t.Logf("the walk-through (%d blocks) took %s", len(blocks), time.Since(start).Round(time.Millisecond))
	if err != nil {
		if time.Since(start) >= runTimeout {
			t.Fatalf("the walk-through did not finish within %s; its output:\n%s", runTimeout, out.String())
		}
		t.Fatalf("the walk-through failed (%v); the last == line names the block of docs/operations.md:\n%s", err, out.String())
	}
	if testing.Verbose() {
		t.Logf("its output:\n%s", out.String())
	}

	if left := groupMembers(pgid, 3*time.Second); len(left) > 0 {
		t.Errorf("the walk-through left processes running (its last block must stop bcpublish serve):\n%s", strings.Join(left, "\n"))
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s, the walk-through's PORT", addr)
	}

	// The end state: the release installed, and status says so (exit 0).
	status := exec.Command(filepath.Join(bin, "bcagent"), "--state", filepath.Join(work, "agent"), "status", "--json")
	status.Env = cmd.Env
	var stderr bytes.Buffer
	status.Stderr = &stderr
	js, err := status.Output()
	if err != nil {
		t.Fatalf("bcagent status --json after the walk-through: %v\n%s%s", err, js, stderr.String())
	}
	var st struct {
		Components []struct {
			Name, Installed, State string
		}
	}
	if err := json.Unmarshal(js, &st); err != nil {
		t.Fatalf("bcagent status --json: %v\n%s", err, js)
	}
	found := false
	for _, c := range st.Components {
		if c.Name == wantComponent {
			found = true
			if c.Installed != wantVersion || c.State != "up-to-date" {
				t.Errorf("bcagent status: %s is %q, installed %q; want up-to-date, installed %s\n%s", c.Name, c.State, c.Installed, wantVersion, js)
			}
		}
	}
	if !found {
		t.Errorf("bcagent status does not list %s:\n%s", wantComponent, js)
	}
	prog := filepath.Join(work, "agent", "install", wantComponent, "current", "bin", wantComponent)
	got, err := exec.Command(prog, "--version").CombinedOutput()
	if want := wantComponent + " " + wantVersion; err != nil || strings.TrimSpace(string(got)) != want {
		t.Errorf("%s --version: %q (%v); want %q", prog, got, err, want)
	}
}

// cleanEnv is the test's environment without the variables that would
// change what bcpublish and bcagent do (every flag has a BCPUBLISH_ or
// BCAGENT_ variable), nor those the walk-through sets.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "BCPUBLISH_"), strings.HasPrefix(name, "BCAGENT_"),
			name == "PATH", name == "WORK", name == "PORT", name == "HOME", name == "TMPDIR", name == "PLATFORM":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// groupMembers waits up to wait for process group pgid to be empty and
// returns what is still in it ("pid state command"), zombies left out.
func groupMembers(pgid int, wait time.Duration) []string {
	deadline := time.Now().Add(wait)
	for {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		var left []string
		procs, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			// pid (comm) state ppid pgrp ...; comm may hold spaces.
			s := string(b)
			i := strings.LastIndexByte(s, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(s[i+1:])
			if len(f) < 3 || f[2] != strconv.Itoa(pgid) || f[0] == "Z" {
				continue
			}
			cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
			left = append(left, strings.TrimSpace(s[:strings.IndexByte(s, ' ')])+" "+f[0]+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}
