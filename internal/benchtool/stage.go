package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type measure struct {
	wall  time.Duration
	cpu   time.Duration // user + system
	rssKB int64
	srv   time.Duration // the server's CPU meanwhile (stage)
}

func timed(name string, args ...string) (measure, string, error) {
	cmd := exec.Command(name, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	m := measure{wall: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.rssKB = ru.Maxrss
		m.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if err != nil {
		return m, buf.String(), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, buf.String())
	}
	return m, buf.String(), nil
}

// stageBench: `bcagent stage` and `apply` of a large artifact served on
// loopback: wall time, throughput as a ratio to `openssl dgst -sha256` of
// the same file (the one the server serves), peak RSS (ru_maxrss), and the
// disk floor. Two cases, each over rounds interleaved with openssl
// (openssl, stage, openssl, stage, ...), every stage into a fresh agent
// state and checked (exit 0, staged file of the right length and sha256):
//
//   - cold: the served file has just been written again (a fresh copy
//     renamed over it, as publishing leaves it: in the page cache, dirty,
//     its writeback under way) before each openssl and each stage;
//   - warm: the served file is in the page cache and written back (sync
//     before the pair).
func stageBench(bin string, size int64, quick bool) (string, error) {
	rounds := 7
	if quick {
		rounds = 1
	}
	bin, _ = filepath.Abs(bin)
	pub, agent := filepath.Join(bin, "bcpublish"), filepath.Join(bin, "bcagent")
	work, err := os.MkdirTemp("", "bcupdate-bench-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	ex := func(name string, args ...string) (string, error) {
		_, o, err := timed(name, args...)
		return o, err
	}
	// Keys, example PKI, repository.
	if _, err := ex(pub, "keys", "generate", "--out", filepath.Join(work, "keys")); err != nil {
		return "", err
	}
	if _, err := ex(pub, "init", "--repo", filepath.Join(work, "repo"), "--keys", filepath.Join(work, "keys")); err != nil {
		return "", err
	}
	keyData, err := os.ReadFile("keys.example/pki/leaf.key")
	if err != nil {
		return "", fmt.Errorf("run from the repository root: %w", err)
	}
	os.WriteFile(filepath.Join(work, "leaf.key"), keyData, 0o600)
	artifact := filepath.Join(work, "notification-client.bin")
	f, err := os.Create(artifact)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		return "", err
	}
	f.Close()
	want := hex.EncodeToString(h.Sum(nil))
	if _, err := ex(pub, "codesign", "sign", "--cert", "keys.example/pki/chain.pem", "--key", filepath.Join(work, "leaf.key"), "--file", artifact); err != nil {
		return "", err
	}
	if _, err := ex(pub, "release", "add", "--repo", filepath.Join(work, "repo"), "--keys", filepath.Join(work, "keys"),
		"--trust", "keys.example/trust", "--component", "notification-client", "--version", "1.0.0",
		"--platform", "linux-amd64", "--file", artifact, "--install", "file"); err != nil {
		return "", err
	}
	// The file the server serves: openssl hashes that one.
	served, err := filepath.Glob(filepath.Join(work, "repo", "targets", "notification-client", "linux-amd64", "1.0.0", "*.notification-client.bin"))
	if err != nil || len(served) != 1 {
		return "", fmt.Errorf("the published artifact: %v %v", served, err)
	}
	target := served[0]
	// rewrite puts a fresh copy of the artifact in place of the served
	// file, as publishing does: written, renamed, not synced.
	rewrite := func() error {
		tmp := target + ".new"
		if err := copyFile(artifact, tmp, false); err != nil {
			return err
		}
		return os.Rename(tmp, target)
	}
	// Serve on loopback.
	srv := exec.Command(pub, "serve", "--repo", filepath.Join(work, "repo"), "--addr", "127.0.0.1:0")
	srvOut := &syncBuffer{}
	srv.Stdout = srvOut
	if err := srv.Start(); err != nil {
		return "", err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var url string
	re := regexp.MustCompile(`at (http://[0-9.:]+) `)
	for i := 0; i < 100 && url == ""; i++ {
		time.Sleep(50 * time.Millisecond)
		if m := re.FindStringSubmatch(srvOut.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		return "", fmt.Errorf("server did not start: %s", srvOut.String())
	}
	// fresh makes a new agent state that has checked and has the release
	// available; nothing of it is timed.
	n := 0
	fresh := func() (string, error) {
		n++
		state := filepath.Join(work, fmt.Sprintf("agent-%d", n))
		if _, err := ex(agent, "--state", state, "init", "--repo-url", url, "--root", filepath.Join(work, "repo", "metadata", "1.root.json"),
			"--trust", "keys.example/trust", "--component", "notification-client", "--device-id", "BENCH-1", "--device-model", "DxH 900",
			"--platform", "linux-amd64", "--install-root", filepath.Join(work, fmt.Sprintf("install-%d", n))); err != nil {
			return "", err
		}
		if _, err := ex(agent, "--state", state, "check"); err != nil {
			return "", err
		}
		return state, nil
	}
	openssl := func() (measure, error) {
		m, out, err := timed("openssl", "dgst", "-sha256", target)
		if err == nil && !strings.Contains(out, want) {
			err = fmt.Errorf("openssl dgst -sha256 %s: want %s, got %s", target, want, out)
		}
		return m, err
	}
	// stage stages into a fresh state and checks the staged file.
	stage := func(state string) (measure, error) {
		before := procCPU(srv.Process.Pid)
		m, out, err := timed(agent, "--state", state, "stage")
		m.srv = procCPU(srv.Process.Pid) - before
		if err != nil {
			return m, err
		}
		staged := filepath.Join(state, "staging", "notification-client", "1.0.0", "notification-client.bin")
		if err := checkFile(staged, size, want); err != nil {
			return m, fmt.Errorf("bcagent stage exited 0 but: %w\n%s", err, out)
		}
		return m, nil
	}
	drop := func(state string) error {
		if err := os.RemoveAll(state); err != nil {
			return err
		}
		return os.RemoveAll(filepath.Join(work, fmt.Sprintf("install-%d", n)))
	}
	var coldSSL, coldStage, warmSSL, warmStage []measure
	var lastState string
	loadBefore := loadavg()
	for r := 0; r < rounds; r++ {
		// Cold pair.
		state, err := fresh()
		if err != nil {
			return "", err
		}
		if err := rewrite(); err != nil {
			return "", err
		}
		m, err := openssl()
		if err != nil {
			return "", err
		}
		coldSSL = append(coldSSL, m)
		if err := rewrite(); err != nil {
			return "", err
		}
		if m, err = stage(state); err != nil {
			return "", err
		}
		coldStage = append(coldStage, m)
		if err := drop(state); err != nil {
			return "", err
		}
		// Warm pair.
		if state, err = fresh(); err != nil {
			return "", err
		}
		syscall.Sync()
		openssl() // the served file in the page cache
		if m, err = openssl(); err != nil {
			return "", err
		}
		warmSSL = append(warmSSL, m)
		if m, err = stage(state); err != nil {
			return "", err
		}
		warmStage = append(warmStage, m)
		if r < rounds-1 {
			if err := drop(state); err != nil {
				return "", err
			}
		}
		lastState = state
	}
	// apply right after the last (warm) stage.
	apply, _, err := timed(agent, "--state", lastState, "apply", "--no-prompt")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(agent, "--state", lastState, "status", "--json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"installed": "1.0.0"`) {
		return "", fmt.Errorf("apply exited 0 but 1.0.0 is not installed: %v\n%s", err, out)
	}
	drop(lastState)
	// The disk floor: writing the same bytes with fsync, nothing else.
	syscall.Sync()
	floorStart := time.Now()
	if err := copyFile(target, filepath.Join(work, "floor.bin"), true); err != nil {
		return "", err
	}
	floor := time.Since(floorStart)
	os.Remove(filepath.Join(work, "floor.bin"))
	loadAfter := loadavg()

	mib := float64(size) / (1 << 20)
	rate := func(d time.Duration) float64 { return mib / d.Seconds() }
	ratios := ratiosTo
	median := func(ms []measure) time.Duration { return medianOf(ms, wallOf) }
	medianCPU := func(ms []measure) time.Duration { return medianOf(ms, cpuOf) }
	medianSrv := func(ms []measure) time.Duration { return medianOf(ms, func(m measure) time.Duration { return m.srv }) }
	maxRSS := func(ms []measure) int64 { return peakRSS(ms) << 10 }
	var b strings.Builder
	fmt.Fprintf(&b, "Artifact: %d MiB of random bytes, detached CMS (sha256), served by `bcpublish serve` on 127.0.0.1; measured %s on %s. "+
		"%d interleaved rounds per case (openssl, stage, openssl, stage, ...), each stage into a fresh agent state and checked (exit 0, staged file with the signed length and sha256); times are medians, ratios min-median-max of the per-round ratios. "+
		"Cold: a fresh copy of the artifact was just renamed over the served file (dirty in the page cache, as publishing leaves it) before each openssl and each stage. Warm: the served file is cached and written back. Load average (1, 5, 15 min) %s before the rounds, %s after: anything else running shares the cores.\n\n",
		size>>20, time.Now().UTC().Format("2006-01-02"), machine(), rounds, loadBefore, loadAfter)
	fmt.Fprintf(&b, "| measurement | time | throughput | ratio to openssl (min-median-max) | CPU (user+sys) | peak RSS | target |\n|---|---|---|---|---|---|---|\n")
	row := func(name string, ssl, st []measure, target string) {
		lo, med, hi := ratios(ssl, st)
		fmt.Fprintf(&b, "| %s | %.2fs | %.0f MiB/s | %.2f-**%.2f**-%.2f | %.2fs (server %.2fs) | %d MiB | %s |\n",
			name, median(st).Seconds(), rate(median(st)), lo, med, hi, medianCPU(st).Seconds(), medianSrv(st).Seconds(), maxRSS(st)>>10, target)
	}
	baseline := func(name string, ssl []measure) {
		fmt.Fprintf(&b, "| %s | %.2fs | %.0f MiB/s | 1.00 | %.2fs | %d MiB | |\n", name, median(ssl).Seconds(), rate(median(ssl)), medianCPU(ssl).Seconds(), maxRSS(ssl)>>10)
	}
	baseline("`openssl dgst -sha256`, cold (baseline)", coldSSL)
	row("`bcagent stage`, cold (download; sha256, disk write and network in parallel; CMS on that sha256)", coldSSL, coldStage, "ratio ≥ 0.7, RSS < 64 MiB")
	baseline("`openssl dgst -sha256`, warm (baseline)", warmSSL)
	row("`bcagent stage`, warm", warmSSL, warmStage, "ratio ≥ 0.9, RSS < 64 MiB")
	fmt.Fprintf(&b, "| disk: copy the file and fsync, nothing else | %.2fs | %.0f MiB/s | %.2f | | | |\n",
		floor.Seconds(), rate(floor), median(warmSSL).Seconds()/floor.Seconds())
	fmt.Fprintf(&b, "| `bcagent apply` right after the last warm stage (re-verify in one pass, fsync, link into place, switch) | %.2fs | %.0f MiB/s | %.2f | %.2fs | %d MiB | RSS < 64 MiB |\n",
		apply.wall.Seconds(), rate(apply.wall), median(warmSSL).Seconds()/apply.wall.Seconds(), apply.cpu.Seconds(), apply.rssKB>>10)
	return b.String(), nil
}

// ratiosTo is the lowest, median and highest of the per-round ratios of
// a baseline's time to a measurement's (round i of one against round i of
// the other: taken in the same seconds).
func ratiosTo(base, got []measure) (lo, med, hi float64) {
	var rs []float64
	for i := range got {
		rs = append(rs, base[i].wall.Seconds()/got[i].wall.Seconds())
	}
	slices.Sort(rs)
	return rs[0], rs[len(rs)/2], rs[len(rs)-1]
}

// medianOf is the median of one figure of the measurements.
func medianOf(ms []measure, f func(measure) time.Duration) time.Duration {
	ds := make([]time.Duration, len(ms))
	for i, m := range ms {
		ds[i] = f(m)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func wallOf(m measure) time.Duration { return m.wall }
func cpuOf(m measure) time.Duration  { return m.cpu }

// peakRSS is the highest peak RSS of the measurements, in MiB.
func peakRSS(ms []measure) int64 {
	var x int64
	for _, m := range ms {
		x = max(x, m.rssKB)
	}
	return x >> 10
}

// checkFile checks that file has length size and sha256 want.
func checkFile(file string, size int64, want string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != want {
		return fmt.Errorf("%s: %d bytes, sha256 %s; want %d bytes, %s", file, n, got, size, want)
	}
	return nil
}

// procCPU is the user and system time pid has used so far.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces): state is
	// field 3, utime and stime fields 14 and 15, in clock ticks (100 a
	// second on Linux).
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// loadavg is /proc/loadavg's three load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func machine() string {
	n, _ := exec.Command("nproc").Output()
	m, _ := exec.Command("sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").Output()
	return fmt.Sprintf("%s cores, %s", strings.TrimSpace(string(n)), strings.TrimSpace(string(m)))
}

func updateDoc(path, section, table string) error {
	begin, end := "<!-- bench:"+section+" -->", "<!-- /bench:"+section+" -->"
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	block := begin + "\n" + table + end
	if i < 0 || j < i {
		s += "\n" + block + "\n"
	} else {
		s = s[:i] + block + s[j+len(end):]
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

// copyFile copies src to dst, with fsync if sync.
func copyFile(src, dst string, sync bool) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, in, make([]byte, 1<<20)); err != nil {
		out.Close()
		return err
	}
	if sync {
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

// syncBuffer is a bytes.Buffer a child process may write while we read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
