//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A virtual machine's memory may be backed by the host only when the guest
// first touches a page (Firecracker, and many clouds' ballooned guests). On
// such a machine, writing 512 MiB into the page cache took 1.47 s of system
// time while the pages were new to the guest and 0.10 s once the guest had
// touched them before. The agent writes what it stages, imports and applies,
// openssl only reads: whichever section first drew on untouched memory paid
// the hypervisor's cost, and which one that was depended on the order of the
// sections, not on the programs. settleMemory touches the machine's free
// memory once before any section runs, so every section meets memory the
// guest has touched before, as on a PC that has been running for a while. On
// hardware without lazy backing it costs one pass over free memory (about a
// second per 10 GiB) and changes nothing.

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): fault the range in
// writable, in one call.
const madvPopulateWrite = 23

// settled records what settleMemory did, for the run note.
type settled struct {
	bytes int64
	took  time.Duration
	err   error // why it did not
}

func (s settled) String() string {
	if s.err != nil {
		return fmt.Sprintf("free memory not touched before the sections (%v)", s.err)
	}
	if s.bytes == 0 {
		return "free memory not touched before the sections"
	}
	pages := s.bytes / int64(os.Getpagesize())
	return fmt.Sprintf("%.1f GiB of free memory touched once before the sections, in %.0f s (%.1f µs a page)",
		float64(s.bytes)/(1<<30), s.took.Seconds(), float64(s.took.Microseconds())/float64(pages))
}

// settleMemory maps the free memory the kernel reports, less a margin for
// everything else running (the larger of 1 GiB and a sixteenth of the
// total) and never more than this process's memory cgroup has room for,
// touches every page and unmaps it.
func settleMemory() (settled, error) {
	free, total, err := meminfo()
	if err != nil {
		return settled{}, err
	}
	margin := max(1<<30, total/16)
	n := free - margin
	if room, ok := cgroupRoom(); ok {
		n = min(n, room-256<<20)
	}
	if n < 256<<20 {
		return settled{}, nil
	}
	page := int64(os.Getpagesize())
	n -= n % page
	start := time.Now()
	mem, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return settled{}, fmt.Errorf("settle memory: map %d bytes: %w", n, err)
	}
	if err := populate(mem, page); err != nil {
		syscall.Munmap(mem)
		return settled{}, fmt.Errorf("settle memory: touch %d bytes: %w", n, err)
	}
	took := time.Since(start)
	if err := syscall.Munmap(mem); err != nil {
		return settled{}, fmt.Errorf("settle memory: unmap: %w", err)
	}
	// The children's peak RSS (the tables' column) starts from this
	// process's peak at fork: reset it, or every child would report the
	// memory just touched.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return settled{}, fmt.Errorf("settle memory: reset this process's peak RSS: %w", err)
	}
	return settled{bytes: n, took: took}, nil
}

// populate writes every page of mem once.
func populate(mem []byte, page int64) error {
	if err := syscall.Madvise(mem, madvPopulateWrite); err != nil {
		if !errors.Is(err, syscall.EINVAL) {
			return err
		}
		// An older kernel: one write per page.
		for i := 0; i < len(mem); i += int(page) {
			mem[i] = 1
		}
	}
	return nil
}

// meminfo returns MemFree and MemTotal from /proc/meminfo, in bytes.
func meminfo() (free, total int64, err error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemFree:":
			free = v << 10
		case "MemTotal:":
			total = v << 10
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if free == 0 || total == 0 {
		return 0, 0, errors.New("/proc/meminfo names no MemFree or MemTotal")
	}
	return free, total, nil
}

// cgroupRoom is what this process's memory cgroup still allows: its
// limit less its use (cgroup v2's memory.max and memory.current, or v1's
// memory.limit_in_bytes and memory.usage_in_bytes); false when there is
// no limit or none can be read. /proc/meminfo shows the machine's memory,
// not a container's.
func cgroupRoom() (int64, bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	read := func(file string) (int64, bool) {
		b, err := os.ReadFile(file)
		if err != nil {
			return 0, false
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return v, err == nil // v2's "max": no limit
	}
	room, found := int64(0), false
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var limit, used int64
		var ok1, ok2 bool
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			limit, ok1 = read("/sys/fs/cgroup" + p + "/memory.max")
			used, ok2 = read("/sys/fs/cgroup" + p + "/memory.current")
		} else if _, p, ok := strings.Cut(l, ":memory:"); ok {
			limit, ok1 = read("/sys/fs/cgroup/memory" + p + "/memory.limit_in_bytes")
			used, ok2 = read("/sys/fs/cgroup/memory" + p + "/memory.usage_in_bytes")
		}
		if ok1 && ok2 && limit < 1<<62 && (!found || limit-used < room) {
			room, found = limit-used, true
		}
	}
	return room, found
}
