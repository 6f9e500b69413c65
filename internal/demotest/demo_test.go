//go:build linux

package demotest

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoLeavesNothingRunning runs scripts/demo.sh as `make demo` does
// (BIN set to freshly built binaries) in a process group of its own, then
// checks that no process of that group is left (zombies aside), that
// nothing listens on the ports bcpublish serve and bcfleet serve had, and that the demo's
// workspace is gone.
func TestDemoLeavesNothingRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries and runs the demo; skipped with -short")
	}
	for _, tool := range []string{"go", "bash", "tar", "install", "mktemp", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH", tool)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", bin+string(filepath.Separator), "./cmd/bcpublish", "./cmd/bcagent", "./cmd/bcfleet")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	tmp := t.TempDir()
	var out bytes.Buffer
	demo := exec.Command("bash", "scripts/demo.sh")
	demo.Dir = root
	demo.Env = append(os.Environ(), "BIN="+bin, "TMPDIR="+tmp, "KEEP=")
	demo.Stdout, demo.Stderr = &out, &out
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := demo.Process.Pid
	// Whatever the outcome, nothing of this group outlives the test.
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	err = demo.Wait()
	t.Logf("the demo took %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}

	if left := groupMembers(t, pgid, 3*time.Second); len(left) > 0 {
		t.Errorf("the demo left processes running in its group %d:\n%s", pgid, strings.Join(left, "\n"))
	}

	m := regexp.MustCompile(`serving .* at https?://(127\.0\.0\.1:[0-9]+) `).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no \"serving ... at URL\" line in the demo's output:\n%s", out.String())
	}
	if c, err := net.DialTimeout("tcp", m[1], time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s, where the demo's bcpublish serve was", m[1])
	}
	m = regexp.MustCompile(`serving devices at https?://(127\.0\.0\.1:[0-9]+),`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no \"serving devices at URL\" line (bcfleet serve) in the demo's output:\n%s", out.String())
	}
	if c, err := net.DialTimeout("tcp", m[1], time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on %s, where the demo's bcfleet serve was", m[1])
	}

	if ents, _ := filepath.Glob(filepath.Join(tmp, "bcupdate-demo.*")); len(ents) > 0 {
		t.Errorf("the demo left its workspace: %v", ents)
	}
}

// groupMembers waits up to wait for process group pgid to be empty and
// returns what is still in it ("pid state command"), zombies left out.
func groupMembers(t *testing.T, pgid int, wait time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
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
			cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
			left = append(left, strings.TrimSpace(s[:strings.IndexByte(s, ' ')])+" "+f[0]+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}
