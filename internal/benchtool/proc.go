package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// child is a process the benchmark started, in a process group of its own,
// so that stopping it reaches everything it started (nginx's workers, a
// shell's background jobs) and nothing it started outlives the benchmark.
type child struct {
	cmd  *exec.Cmd
	pgid int
	done chan struct{} // closed once the leader is reaped
	err  error         // from Wait, valid after done
}

var children = struct {
	sync.Mutex
	m map[*child]struct{}
}{m: map[*child]struct{}{}}

var interruptOnce sync.Once

// handleInterrupts installs, once, a handler that stops every child and
// undoes what onExit registered before the benchmark exits on SIGINT,
// SIGTERM or SIGHUP.
func handleInterrupts() {
	interruptOnce.Do(func() {
		sigc := make(chan os.Signal, 1)
		signal.Notify(sigc, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			s := <-sigc
			fmt.Fprintf(os.Stderr, "benchtool: %v: stopping %d children\n", s, liveChildren())
			runAtExit() // first: quick, and stopping children may take a while
			stopAll()
			os.Exit(130)
		}()
	})
}

// atExit holds what must be undone however the benchmark ends (a setting
// of the machine it changed): run by run's return and by the interrupt
// handler, last registered first.
var atExit struct {
	sync.Mutex
	fns []func()
}

func onExit(f func()) {
	atExit.Lock()
	defer atExit.Unlock()
	atExit.fns = append(atExit.fns, f)
}

func runAtExit() {
	atExit.Lock()
	defer atExit.Unlock()
	for i := len(atExit.fns) - 1; i >= 0; i-- {
		atExit.fns[i]()
	}
	atExit.fns = nil
}

// start starts cmd as the leader of a new process group and registers it.
// A process group of its own also means a terminal's Ctrl-C no longer
// reaches it: the first start installs a handler that stops every child
// before the benchmark exits on SIGINT, SIGTERM or SIGHUP.
func start(cmd *exec.Cmd) (*child, error) {
	handleInterrupts()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pgid = 0
	if cmd.WaitDelay == 0 {
		// Wait also waits for output copies, which a grandchild holding
		// the pipe would keep open.
		cmd.WaitDelay = 5 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, pgid: cmd.Process.Pid, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	children.Lock()
	children.m[c] = struct{}{}
	children.Unlock()
	return c, nil
}

// exited says whether the leader has exited (and been reaped).
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the whole process group, waits for the leader, then
// for every other member of the group to be gone. After grace (for the
// leader, then again for the rest) the group gets SIGKILL. It returns an
// error if the leader had to be killed or a process of the group survives
// everything; the child is unregistered either way.
func (c *child) stop(sig syscall.Signal, grace time.Duration) error {
	defer func() {
		children.Lock()
		delete(children.m, c)
		children.Unlock()
	}()
	var errs []error
	if err := syscall.Kill(-c.pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		errs = append(errs, fmt.Errorf("%s: signal %v: %w", c.name(), sig, err))
	}
	select {
	case <-c.done:
	case <-time.After(grace):
		errs = append(errs, fmt.Errorf("%s: still running %v after %v: killed", c.name(), grace, sig))
		syscall.Kill(-c.pgid, syscall.SIGKILL)
		<-c.done
	}
	if !waitGroupGone(c.pgid, grace) {
		syscall.Kill(-c.pgid, syscall.SIGKILL)
		if !waitGroupGone(c.pgid, 5*time.Second) {
			errs = append(errs, fmt.Errorf("%s: processes of group %d survive SIGKILL: %v", c.name(), c.pgid, groupMembers(c.pgid)))
		} else {
			errs = append(errs, fmt.Errorf("%s: processes of group %d outlived the leader by %v: killed", c.name(), c.pgid, grace))
		}
	}
	return errors.Join(errs...)
}

func (c *child) name() string { return filepath.Base(c.cmd.Path) }

// stopAll stops every registered child (SIGTERM, then SIGKILL after 5s).
func stopAll() error {
	children.Lock()
	all := make([]*child, 0, len(children.m))
	for c := range children.m {
		all = append(all, c)
	}
	children.Unlock()
	var errs []error
	for _, c := range all {
		errs = append(errs, c.stop(syscall.SIGTERM, 5*time.Second))
	}
	return errors.Join(errs...)
}

// liveChildren is how many started children are not yet stopped.
func liveChildren() int {
	children.Lock()
	defer children.Unlock()
	return len(children.m)
}

// waitGroupGone polls until no live process is in group pgid, for at most d.
func waitGroupGone(pgid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupAlive says whether a process of group pgid is still running:
// kill(-pgid, 0) answers ESRCH once the group is empty. A member that has
// exited but whose parent is gone stays a zombie until PID 1 reaps it,
// which in some containers never happens; kill(2) still finds zombies, so
// where /proc exists a group of zombies only counts as gone.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return true // no /proc: trust kill(2)
	}
	return len(groupMembers(pgid)) > 0
}

// groupMembers lists the pids of group pgid's processes that are not
// zombies, from /proc (empty where there is no /proc).
func groupMembers(pgid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited meanwhile
		}
		state, pg, ok := parseStat(b)
		if !ok || pg != pgid || state == 'Z' || state == 'X' {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		pids = append(pids, pid)
	}
	return pids
}

// parseStat reads the state and process group from a /proc/PID/stat line:
// "pid (comm) state ppid pgrp ...", where comm may hold spaces and ')'.
func parseStat(b []byte) (state byte, pgrp int, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pg, true
}

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture the benchmark runs on).
const userHZ = 100

// groupCPU is the CPU time (user and system, every thread) the live
// processes of group pgid, and the children they reaped, have used so
// far, from /proc; ok is false where there is no /proc or no member was
// found. A member that exits between two readings and is reaped by a
// process outside the group takes its time with it, so this is for
// groups whose processes all live through the measurement (servers).
func groupCPU(pgid int) (seconds float64, ok bool) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	found := false
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited meanwhile
		}
		_, pg, ok := parseStat(b)
		if !ok || pg != pgid {
			continue
		}
		t, ok := parseCPU(b)
		if !ok {
			continue
		}
		ticks += t
		found = true
	}
	if !found {
		return 0, false
	}
	return float64(ticks) / userHZ, true
}

// parseCPU reads utime+stime (fields 14 and 15, in USER_HZ ticks) from a
// /proc/PID/stat line, plus cutime+cstime (16 and 17): the time of the
// children it has reaped. A server that forks short-lived workers
// (PostgreSQL's autovacuum workers, its backends when sessions end) thus
// keeps their time in the sum after they exit; a live child is counted
// once, by itself.
func parseCPU(b []byte) (int64, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0, false
	}
	var sum int64
	for _, k := range []int{11, 12, 13, 14} {
		v, err := strconv.ParseInt(string(f[k]), 10, 64)
		if err != nil {
			return 0, false
		}
		sum += v
	}
	return sum, true
}

// treeCPU is the CPU time (user and system, every thread) that process
// pid and its live descendants, and the children they reaped, have used
// so far, from /proc; ok is false where pid is not found. For servers
// whose children leave the leader's process group (PostgreSQL's backends
// and workers each call setsid) and exit and are reaped by it while they
// are measured.
func treeCPU(pid int) (seconds float64, ok bool) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	type proc struct {
		ppid  int
		ticks int64
	}
	procs := map[int]proc{}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited meanwhile
		}
		id, ppid, ok := parsePIDs(b)
		if !ok {
			continue
		}
		t, ok := parseCPU(b)
		if !ok {
			continue
		}
		procs[id] = proc{ppid, t}
	}
	if _, found := procs[pid]; !found {
		return 0, false
	}
	var ticks int64
	for id, p := range procs {
		for a, hops := id, 0; hops < 64; hops++ {
			if a == pid {
				ticks += p.ticks
				break
			}
			q, found := procs[a]
			if !found || q.ppid == a {
				break
			}
			a = q.ppid
		}
	}
	return float64(ticks) / userHZ, true
}

// parsePIDs reads the process ID (field 1) and its parent's (field 4)
// from a /proc/PID/stat line.
func parsePIDs(b []byte) (pid, ppid int, ok bool) {
	i := bytes.IndexByte(b, ' ')
	j := bytes.LastIndexByte(b, ')')
	if i < 0 || j < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[j+1:]) // f[0] is field 3 (state)
	if len(f) < 2 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(string(b[:i]))
	ppid, err2 := strconv.Atoi(string(f[1]))
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return pid, ppid, true
}
