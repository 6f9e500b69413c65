//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
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
	reporting string // what pauseReporting did
	bytes     int64
	took      time.Duration
	err       error // why it did not
}

func (s settled) String() string {
	var b strings.Builder
	if s.reporting != "" {
		b.WriteString(s.reporting + "; ")
	}
	switch {
	case s.err != nil:
		fmt.Fprintf(&b, "free memory not touched before the sections (%v)", s.err)
	case s.bytes == 0:
		b.WriteString("free memory not touched before the sections")
	default:
		pages := s.bytes / int64(os.Getpagesize())
		fmt.Fprintf(&b, "%.1f GiB of free memory touched once before the sections, in %.0f s (%.1f µs a page)",
			float64(s.bytes)/(1<<30), s.took.Seconds(), float64(s.took.Microseconds())/float64(pages))
	}
	return b.String()
}

// pageReportingOrder is the guest's free page reporting (virtio-balloon's
// VIRTIO_BALLOON_F_REPORTING): free blocks of at least this order are
// handed back to the host, which drops them, so the next use of those
// pages faults in the host again. Measured here: of 2 GiB freed, 670 MiB
// were handed back within 5 s.
const pageReportingOrder = "/sys/module/page_reporting/parameters/page_reporting_order"

// noReportingOrder is NR_PAGE_ORDERS: no free block is that large, so
// nothing is reported (kernels that cap the parameter at MAX_PAGE_ORDER
// refuse it, and reporting goes on).
const noReportingOrder = "11"

// pauseReporting stops free page reporting while the benchmark runs and
// registers its restoration (onExit); it says what it did, "" where the
// machine has no free page reporting.
func pauseReporting() string {
	old, err := os.ReadFile(pageReportingOrder)
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	was := strings.TrimSpace(string(old))
	if err == nil && was == noReportingOrder {
		return "free page reporting already off"
	}
	if err == nil {
		// Registered before the write: an interrupt between the two
		// still sets it back (writing the old value is harmless).
		onExit(func() {
			if err := os.WriteFile(pageReportingOrder, []byte(was), 0); err != nil {
				fmt.Fprintf(os.Stderr, "benchtool: setting %s back to %s: %v\n", pageReportingOrder, was, err)
			}
		})
		err = os.WriteFile(pageReportingOrder, []byte(noReportingOrder), 0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool: warning: free page reporting goes on:", err)
		return fmt.Sprintf("free page reporting not paused (%v)", pathless(err))
	}
	return fmt.Sprintf("free page reporting paused for the run (page_reporting_order %s → %s, set back when it ends)", was, noReportingOrder)
}

// pathless is err without its *PathError's path.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// settleMemory maps the free memory the kernel reports, less a margin for
// everything else running (the larger of 1 GiB and a sixteenth of the
// total) and never more than this process's memory cgroup has room for,
// touches every page and unmaps it.
func settleMemory(st settled) (settled, error) {
	free, total, err := meminfo()
	if err != nil {
		return st, err
	}
	margin := max(1<<30, total/16)
	n := free - margin
	if room, ok := cgroupRoom(); ok {
		n = min(n, room-256<<20)
	}
	if n < 256<<20 {
		return st, nil
	}
	page := int64(os.Getpagesize())
	n -= n % page
	start := time.Now()
	mem, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return st, fmt.Errorf("settle memory: map %d bytes: %w", n, err)
	}
	if err := populate(mem, page); err != nil {
		syscall.Munmap(mem)
		return st, fmt.Errorf("settle memory: touch %d bytes: %w", n, err)
	}
	took := time.Since(start)
	if err := syscall.Munmap(mem); err != nil {
		return st, fmt.Errorf("settle memory: unmap: %w", err)
	}
	// The children's peak RSS (the tables' column) starts from this
	// process's peak at fork: reset it, or every child would report the
	// memory just touched.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return st, fmt.Errorf("settle memory: reset this process's peak RSS: %w", err)
	}
	st.bytes, st.took = n, took
	return st, nil
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
