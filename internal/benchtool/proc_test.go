package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// groupGone asserts that no live process of group pgid remains.
func groupGone(t *testing.T, pgid int) {
	t.Helper()
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return
	}
	if m := groupMembers(pgid); len(m) > 0 {
		t.Errorf("processes of group %d survive: %v", pgid, m)
	}
}

// waitMembers waits until group pgid has at least n live processes.
func waitMembers(t *testing.T, pgid, n int) []int {
	t.Helper()
	var m []int
	for i := 0; i < 200; i++ {
		if m = groupMembers(pgid); len(m) >= n {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("group %d has %v, want %d processes", pgid, m, n)
	return nil
}

// nginx stopped through the helper leaves none of its workers behind.
func TestStopNginx(t *testing.T) {
	nginx := testutil.NeedTool(t, "nginx")
	dir := t.TempDir()
	c, addr, err := startNginx(nginx, filepath.Join(dir, "nginx"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if liveChildren() != 1 {
		t.Errorf("liveChildren = %d, want 1", liveChildren())
	}
	// The master and its two workers, all in the master's group.
	waitMembers(t, c.pgid, 3)
	if err := c.stop(syscall.SIGQUIT, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	groupGone(t, c.pgid)
	if liveChildren() != 0 {
		t.Errorf("liveChildren = %d after stop, want 0", liveChildren())
	}
	if waitPortOnce(addr) {
		t.Errorf("something still listens on %s", addr)
	}
}

// A shell's background job (a grandchild) is stopped with the shell.
func TestStopGrandchild(t *testing.T) {
	c, err := start(exec.Command("sh", "-c", "sleep 60 & sleep 60"))
	if err != nil {
		t.Fatal(err)
	}
	pids := waitMembers(t, c.pgid, 2)
	if err := c.stop(syscall.SIGTERM, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	groupGone(t, c.pgid)
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue // gone and reaped
		}
		if state, pg, ok := parseStat(b); ok && pg == c.pgid && state != 'Z' {
			t.Errorf("process %d of the group is still running (state %c)", pid, state)
		}
	}
}

// stopAll stops what is still registered; a process ignoring the signal
// is killed after the grace period, and stop says so.
func TestStopAllAndStubborn(t *testing.T) {
	if _, err := start(exec.Command("sleep", "60")); err != nil {
		t.Fatal(err)
	}
	if err := stopAll(); err != nil {
		t.Fatal(err)
	}
	if liveChildren() != 0 {
		t.Errorf("liveChildren = %d after stopAll", liveChildren())
	}
	c, err := start(exec.Command("sh", "-c", `trap "" TERM; while :; do sleep 0.05; done`))
	if err != nil {
		t.Fatal(err)
	}
	waitMembers(t, c.pgid, 1)
	time.Sleep(100 * time.Millisecond) // the trap is set
	if err := c.stop(syscall.SIGTERM, 500*time.Millisecond); err == nil {
		t.Error("stop of a process ignoring SIGTERM reported no error")
	}
	groupGone(t, c.pgid)
}

func TestParseStat(t *testing.T) {
	state, pg, ok := parseStat([]byte("123 (a b) c) S 1 456 456 0 -1 4194560\n"))
	if !ok || state != 'S' || pg != 456 {
		t.Errorf("parseStat = %c %d %v", state, pg, ok)
	}
	if _, _, ok := parseStat([]byte("garbage")); ok {
		t.Error("parseStat accepted garbage")
	}
}

func TestParseCPU(t *testing.T) {
	line := "123 (a b) c) S 1 456 456 0 -1 4194560 10 0 0 0 250 37 0 0 20 0 3 0\n"
	if n, ok := parseCPU([]byte(line)); !ok || n != 287 {
		t.Errorf("parseCPU = %d %v, want 287", n, ok)
	}
	// Reaped children's time (cutime 40, cstime 2) counts too.
	line = "123 (postgres) S 1 456 456 0 -1 4194560 10 0 0 0 250 37 40 2 20 0 3 0\n"
	if n, ok := parseCPU([]byte(line)); !ok || n != 329 {
		t.Errorf("parseCPU with reaped children = %d %v, want 329", n, ok)
	}
	if _, ok := parseCPU([]byte("123 (x) S 1 2")); ok {
		t.Error("parseCPU accepted a short line")
	}
}

// A busy child's group CPU time grows; a group with no member has none.
func TestGroupCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	c, err := start(exec.Command("sh", "-c", `while :; do :; done`))
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop(syscall.SIGKILL, time.Second)
	waitMembers(t, c.pgid, 1)
	a, ok := groupCPU(c.pgid)
	if !ok {
		t.Fatal("groupCPU found no member")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := groupCPU(c.pgid)
		if b > a {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group CPU time stayed at %v for 5s of a busy loop", a)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := groupCPU(1 << 30); ok {
		t.Error("groupCPU found a member of a group that does not exist")
	}
}

// TestTreeCPU: a process's tree includes a child that left its process
// group (as PostgreSQL's backends do), and a child that exited and was
// reaped keeps its time in the sum.
func TestTreeCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	// The shell spins in a child in a new session, reaps it, then spins
	// in another that it keeps alive until killed.
	cmd := exec.Command("sh", "-c", `setsid sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done'; setsid sh -c 'while :; do :; done' & wait`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		exec.Command("pkill", "-KILL", "-P", strconv.Itoa(cmd.Process.Pid)).Run()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	deadline := time.Now().Add(30 * time.Second)
	var own float64
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if ticks, ok := parseCPU(b); ok && ticks > 10 { // the reaped child's time is in cutime
			own = float64(ticks) / userHZ
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if own == 0 {
		t.Fatal("the first child's time never showed in the shell's cutime")
	}
	time.Sleep(300 * time.Millisecond) // the second child spins
	tree, ok := treeCPU(cmd.Process.Pid)
	if !ok {
		t.Fatal("treeCPU found no process")
	}
	if tree < own+0.1 {
		t.Errorf("treeCPU = %.2fs, want more than the shell's own and reaped %.2fs plus the live child's", tree, own)
	}
	if _, ok := treeCPU(1 << 30); ok {
		t.Error("treeCPU found a process that does not exist")
	}
}

func TestParsePIDs(t *testing.T) {
	if pid, ppid, ok := parsePIDs([]byte("123 (a b) c) S 77 456 456 0")); !ok || pid != 123 || ppid != 77 {
		t.Errorf("parsePIDs = %d %d %v", pid, ppid, ok)
	}
	if _, _, ok := parsePIDs([]byte("x")); ok {
		t.Error("parsePIDs accepted garbage")
	}
}
