package main

import (
	"crypto/rand"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// footprintSize is each component's artifact in the agent section.
const footprintSize = 1 << 20

// agentBench: the agent binary's size and what is linked into it, and the
// idle RSS of `bcagent run --interval 1h` with a real state: n components
// installed (1.0.0, staged and applied), then 2.0.0 published for each and
// staged, by `bcagent stage` before run starts or by run's own first
// poll. RSS is read from /proc once that first poll has finished (the
// agent's activity.json has come and gone) and again a little later.
func agentBench(o options) (string, error) {
	counts := []int{1, 50}
	settle := 5 * time.Second
	if o.quick {
		counts, settle = []int{1, 3}, time.Second
	}
	bin := filepath.Join(o.bin, "bcagent")
	fi, err := os.Stat(bin)
	if err != nil {
		return "", err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "Each component's release is a %s program (detached CMS), served on 127.0.0.1; `bcagent run --interval 1h`, RSS from /proc/PID/status when its first poll has finished (activity.json gone) and %s later; peak is VmHWM.\n\n", kib(footprintSize), settle)
	fmt.Fprintf(&s, "| installed components | 2.0.0 staged by | RSS when the poll ends | idle RSS %s later | peak RSS (VmHWM) | target |\n|---|---|---|---|---|---|\n", settle)
	for _, n := range counts {
		rows, err := footprintRows(o, n, settle)
		if err != nil {
			return "", fmt.Errorf("%d components: %w", n, err)
		}
		s.WriteString(rows)
	}
	deps, err := linkedSizes()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&s, "\n`bcagent` binary (stripped, as `make build` makes it): %s. Largest parts linked into it (sum of the symbol sizes of an unstripped build, as `go tool nm -size` lists them, .bss left out; by module, the standard library by top-level package):\n\n", kib(fi.Size()))
	fmt.Fprintf(&s, "| module or package | size |\n|---|---|\n")
	for _, d := range deps {
		fmt.Fprintf(&s, "| %s | %s |\n", d.name, kib(d.size))
	}
	return s.String(), nil
}

// footprintRows measures one agent size: two states brought to 1.0.0 of
// n components, then 2.0.0 published; one stages with `bcagent stage`
// before run, the other leaves it to run.
func footprintRows(o options, n int, settle time.Duration) (string, error) {
	w, err := newWorld(0)
	if err != nil {
		return "", err
	}
	defer w.close()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("component-%02d", i)
	}
	publish := func(version string) error {
		for _, name := range names {
			data := make([]byte, footprintSize)
			rand.Read(data)
			f, err := w.artifact(name+"-"+version+".bin", data)
			if err != nil {
				return err
			}
			if _, out, err := timed(filepath.Join(o.bin, "bcpublish"), "release", "add", "--repo", w.store.Dir, "--keys", filepath.Join(w.dir, "keys"),
				"--trust", "keys.example/trust", "--component", name, "--version", version, "--platform", "linux-amd64", "--file", f); err != nil {
				return fmt.Errorf("%v %s", err, out)
			}
			os.Remove(f)
		}
		return nil
	}
	if err := publish("1.0.0"); err != nil {
		return "", err
	}
	url, _, stop, err := w.serve()
	if err != nil {
		return "", err
	}
	defer stop()
	agent := filepath.Join(o.bin, "bcagent")
	cli := func(state string, args ...string) (string, error) {
		_, out, err := timed(agent, append([]string{"--state", state}, args...)...)
		return out, err
	}
	states := []string{filepath.Join(w.dir, "agent-cli"), filepath.Join(w.dir, "agent-run")}
	for i, state := range states {
		args := []string{"init", "--repo-url", url,
			"--root", filepath.Join(w.store.Dir, "metadata", "1.root.json"), "--trust", "keys.example/trust",
			"--device-id", "BENCH-1", "--device-model", "DxH 900", "--platform", "linux-amd64",
			"--install-root", filepath.Join(w.dir, fmt.Sprintf("install-%d", i))}
		for _, name := range names {
			args = append(args, "--component", name)
		}
		if _, err := cli(state, args...); err != nil {
			return "", err
		}
		if _, err := cli(state, "stage"); err != nil {
			return "", err
		}
		if _, err := cli(state, "apply", "--no-prompt"); err != nil {
			return "", err
		}
		if err := wantStatus(agent, state, names, "installed", "1.0.0"); err != nil {
			return "", err
		}
	}
	if err := publish("2.0.0"); err != nil {
		return "", err
	}
	if _, err := cli(states[0], "stage"); err != nil {
		return "", err
	}
	if err := wantStatus(agent, states[0], names, "staged", "2.0.0"); err != nil {
		return "", err
	}
	var b strings.Builder
	for i, state := range states {
		by := "`bcagent stage` before run"
		if i == 1 {
			by = "run's first poll"
		}
		rss, later, anon, hwm, err := idleRSS(agent, state, settle)
		if err != nil {
			return "", fmt.Errorf("run (%s): %w", by, err)
		}
		if err := wantStatus(agent, state, names, "staged", "2.0.0"); err != nil {
			return "", fmt.Errorf("after run's first poll: %w", err)
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s (anonymous %.1f MiB) | %s | idle RSS < 20 MiB |\n", n, by, kib(rss), kib(later), float64(anon)/(1<<20), kib(hwm))
	}
	return b.String(), nil
}

// wantStatus checks with `bcagent status --json` that every component's
// field (installed, staged) is version.
func wantStatus(agent, state string, names []string, field, version string) error {
	out, err := exec.Command(agent, "--state", state, "status", "--json").Output()
	if err != nil {
		return fmt.Errorf("status: %v", err)
	}
	var st struct {
		Components []map[string]any `json:"components"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return fmt.Errorf("status --json: %v", err)
	}
	got := map[string]any{}
	for _, c := range st.Components {
		got[fmt.Sprint(c["name"])] = c[field]
	}
	for _, name := range names {
		if got[name] != version {
			return fmt.Errorf("%s: %s is %v, want %s", name, field, got[name], version)
		}
	}
	return nil
}

// idleRSS starts `bcagent run --interval 1h`, waits for its first poll to
// finish and returns VmRSS then and settle later (and RssAnon of that),
// and VmHWM, in bytes.
func idleRSS(agent, state string, settle time.Duration) (rss, later, anon, hwm int64, err error) {
	// Every poll begins with a check, which replaces last-check.json (a
	// new file, renamed into place) whether or not anything changed. A
	// poll may replace it twice, and ext4 may give the second file the
	// first one's inode back: a new modification time tells it too.
	checkFile := filepath.Join(state, "last-check.json")
	before, _ := os.Stat(checkFile)
	cmd := exec.Command(agent, "--state", state, "run", "--interval", "1h")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	exited := make(chan struct{})
	go func() { cmd.Process.Wait(); close(exited) }()
	// The poll holds the state lock and keeps activity.json with its pid
	// while it works, and removes it when it lets go; its check replaces
	// last-check.json. Either sign, then no activity.json, is the end of
	// the poll. (A poll that finds nothing new can come and go between
	// two looks at activity.json: state.json is then not rewritten.)
	activity := filepath.Join(state, "activity.json")
	pid := fmt.Sprintf(`"pid": %d`, cmd.Process.Pid)
	pidCompact := fmt.Sprintf(`"pid":%d`, cmd.Process.Pid)
	saw := false
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			return 0, 0, 0, 0, fmt.Errorf("bcagent run exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			return 0, 0, 0, 0, fmt.Errorf("the first poll did not finish in 60s: %s", out.String())
		}
		data, rerr := os.ReadFile(activity)
		if rerr == nil && (strings.Contains(string(data), pid) || strings.Contains(string(data), pidCompact)) {
			saw = true
		}
		if os.IsNotExist(rerr) {
			fi, _ := os.Stat(checkFile)
			if saw || (fi != nil && (before == nil || !os.SameFile(fi, before) || !fi.ModTime().Equal(before.ModTime()))) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	rss, _, _, err = procRSS(cmd.Process.Pid)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	time.Sleep(settle)
	later, anon, hwm, err = procRSS(cmd.Process.Pid)
	return rss, later, anon, hwm, err
}

// procRSS reads VmRSS, RssAnon and VmHWM of pid, in bytes.
func procRSS(pid int) (rss, anon, hwm int64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	field := func(name string) int64 {
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, name+":"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				return kb << 10
			}
		}
		return -1
	}
	return field("VmRSS"), field("RssAnon"), field("VmHWM"), nil
}

type linked struct {
	name string
	size int64
}

// linkedSizes builds an unstripped bcagent and sums its symbol sizes by
// module (the standard library by top-level package), largest first.
func linkedSizes() ([]linked, error) {
	dir, err := os.MkdirTemp("", "bcupdate-nm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	exe := filepath.Join(dir, "bcagent")
	if out, err := exec.Command("go", "build", "-o", exe, "github.com/beckmanconnect/bcupdate/cmd/bcagent").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v %s", err, out)
	}
	// The ELF symbol table (what `go tool nm -size` lists), without what
	// is in no file section (.bss, .noptrbss: e.g. the 32 MiB of
	// crypto/internal/fips140/drbg.memory, address space only).
	f, err := elf.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, err
	}
	sums := map[string]int64{}
	for _, sym := range syms {
		i := int(sym.Section)
		if sym.Size == 0 || i <= 0 || i >= len(f.Sections) || f.Sections[i].Type == elf.SHT_NOBITS {
			continue
		}
		sums[symbolModule(sym.Name)] += int64(sym.Size)
	}
	var ls []linked
	for k, v := range sums {
		ls = append(ls, linked{k, v})
	}
	slices.SortFunc(ls, func(a, b linked) int { return int(b.size - a.size) })
	return ls[:min(len(ls), 8)], nil
}

// symbolModule names what a Go symbol belongs to: its module (for paths
// with a dot in the first element: github.com/owner/name, golang.org/x/name,
// gopkg.in/name), else the standard library's top-level package.
func symbolModule(sym string) string {
	if strings.HasPrefix(sym, "go:") || strings.HasPrefix(sym, "runtime.") {
		return "std: runtime (with go:func.* function metadata)"
	}
	sym = strings.TrimPrefix(sym, "type:")
	sym = strings.TrimLeft(sym, "*[]")
	// The package path ends at the first dot after the last slash before
	// any bracket or paren.
	path := sym
	if i := strings.IndexAny(path, "([ "); i >= 0 {
		path = path[:i]
	}
	slash := strings.LastIndex(path, "/")
	if i := strings.Index(path[slash+1:], "."); i >= 0 {
		path = path[:slash+1+i]
	}
	parts := strings.Split(path, "/")
	if !strings.Contains(parts[0], ".") {
		if parts[0] == "" || strings.ContainsAny(parts[0], "*<>:") {
			return "other (unnamed data)"
		}
		if parts[0] == "vendor" {
			return "std: vendor (golang.org/x in the standard library)"
		}
		return "std: " + parts[0]
	}
	n := 2 // google.golang.org/protobuf, gopkg.in/yaml.v3
	switch parts[0] {
	case "github.com", "golang.org", "gitlab.com", "bitbucket.org":
		n = 3
	}
	return strings.Join(parts[:min(len(parts), n)], "/")
}
