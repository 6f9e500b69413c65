package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

const programV1 = `package main

import (
	"fmt"
	"os"
	"strings"
)

func greet(name string) string { return "hello, " + strings.ToUpper(name) }

func main() {
	for _, a := range os.Args[1:] {
		fmt.Println(greet(a))
	}
}
`

// deltaBench: a realistic change (the same Go program rebuilt with a small
// code change), full artifact against the bsdiff patch.
func deltaBench(o options) (string, error) {
	if _, err := exec.LookPath("bsdiff"); err != nil {
		return "| delta | not measured: bsdiff is not installed (run make deps) |\n|---|---|\n", nil
	}
	dir, err := os.MkdirTemp("", "bcupdate-delta-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	build := func(src, out string) error {
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/nc\n\ngo 1.22\n"), 0o644)
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v %s", err, b)
		}
		return nil
	}
	v2 := strings.Replace(programV1, `"hello, "`, `"good morning, "`, 1) + "\nfunc farewell(name string) string { return \"bye, \" + name }\n"
	a, b2, patch := filepath.Join(dir, "v1"), filepath.Join(dir, "v2"), filepath.Join(dir, "patch")
	if err := build(programV1, a); err != nil {
		return "", err
	}
	if err := build(v2, b2); err != nil {
		return "", err
	}
	if out, err := exec.Command("bsdiff", a, b2, patch).CombinedOutput(); err != nil {
		return "", fmt.Errorf("bsdiff: %v %s", err, out)
	}
	full, _ := os.Stat(b2)
	p, _ := os.Stat(patch)
	var s strings.Builder
	fmt.Fprintf(&s, "| full artifact | bsdiff patch | patch / full | target |\n|---|---|---|---|\n")
	fmt.Fprintf(&s, "| %s | %s | %.1f%% | ≤ 10%% |\n", kib(full.Size()), kib(p.Size()), 100*float64(p.Size())/float64(full.Size()))
	return s.String(), nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitPortOnce says whether something accepts connections on addr.
func waitPortOnce(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// serveBench: `bcpublish serve` against nginx serving the same directory,
// for timestamp.json, a 1 MiB and a 256 MiB file under targets/. Each URL
// is first checked on both servers (200, length, sha256), then timed with
// wrk in rounds taken in turns; every wrk run must be free of error
// statuses and socket errors and must have read at least the file's size
// per response. The median of each is reported.
func serveBench(o options) (string, error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return "| serve | not measured: wrk is not installed (run make deps) |\n|---|---|\n", nil
	}
	w, err := newWorld(0)
	if err != nil {
		return "", err
	}
	defer w.close()
	// nginx's workers run as nobody when the benchmark runs as root, and
	// os.MkdirTemp makes the world's directory 0700: they answered every
	// request with 403. What is served is a public repository's files, so
	// the directory is opened to everyone (0755) rather than running
	// nginx's workers as root; verifyURL fails the run if any path down to
	// a file is still unreadable.
	if err := os.Chmod(w.dir, 0o755); err != nil {
		return "", err
	}
	mid, big := int64(1<<20), int64(256<<20)
	if o.quick {
		mid, big = 64<<10, 2<<20
	}
	ts := filepath.Join(w.store.Dir, "metadata", "timestamp.json")
	tsSize, tsSum, err := fileSum(ts)
	if err != nil {
		return "", err
	}
	files := []servedFile{{label: "timestamp.json", path: "/metadata/timestamp.json", size: tsSize, sum: tsSum}}
	for _, sz := range []int64{mid, big} {
		f, err := placeFile(w.store.Dir, fmt.Sprintf("file-%s.bin", sizeName(sz)), sz)
		if err != nil {
			return "", err
		}
		files = append(files, f)
	}
	for i := range files {
		files[i].wrk = wrkOpts{threads: 2, conns: 32, duration: o.duration, minBytes: files[i].size, minRequests: 32}
	}
	// Fewer connections for the big file, a timeout long enough for one
	// transfer while four share the loopback, and several full transfers
	// per connection.
	files[2].wrk.conns, files[2].wrk.timeout, files[2].wrk.minRequests = 4, "60s", 8

	type server struct {
		name string
		c    *child
		sig  syscall.Signal
		base string
		done bool
	}
	var servers []*server
	stop := func() error {
		var errs []error
		for _, s := range servers {
			if !s.done {
				s.done = true
				errs = append(errs, s.c.stop(s.sig, 10*time.Second))
			}
		}
		return errors.Join(errs...)
	}
	defer stop()
	if nginx, err := exec.LookPath("nginx"); err == nil {
		c, addr, err := startNginx(nginx, filepath.Join(w.dir, "nginx"), w.store.Dir)
		if err != nil {
			return "", fmt.Errorf("nginx: %w", err)
		}
		servers = append(servers, &server{name: "nginx", c: c, sig: syscall.SIGQUIT, base: "http://" + addr})
	}
	c, addr, err := startOurs(o.bin, w.store.Dir, filepath.Join(w.dir, "serve.log"))
	if err != nil {
		return "", err
	}
	servers = append(servers, &server{name: "bcpublish serve", c: c, sig: syscall.SIGTERM, base: "http://" + addr})

	for _, f := range files {
		for _, s := range servers {
			if err := verifyURL(s.base+f.path, f.size, f.sum); err != nil {
				if s.name == "nginx" && strings.Contains(err.Error(), "status 403") {
					err = fmt.Errorf("%w (%w)", err, errNotReadable)
				}
				return "", fmt.Errorf("%s: %w", s.name, err)
			}
		}
	}
	rounds := 3
	if o.quick {
		rounds = 1
	}
	rps := make([][][]float64, len(files)) // file, server, round
	// CPU time (user and system, every process of the server's group:
	// nginx's master and workers) per completed response, in µs: what
	// decides throughput once the machine is not shared, and much less
	// sensitive than requests/s to other jobs on it.
	cpu := make([][][]float64, len(files))
	for i := range files {
		rps[i] = make([][]float64, len(servers))
		cpu[i] = make([][]float64, len(servers))
	}
	for r := 0; r < rounds; r++ {
		for i, f := range files {
			for j, s := range servers {
				before, okB := groupCPU(s.c.pgid)
				res, err := wrkRun(s.base+f.path, f.wrk)
				if err != nil {
					return "", fmt.Errorf("%s: %w", s.name, err)
				}
				after, okA := groupCPU(s.c.pgid)
				rps[i][j] = append(rps[i][j], res.rps())
				if okB && okA {
					cpu[i][j] = append(cpu[i][j], (after-before)*1e6/float64(res.requests))
				}
			}
		}
	}
	// Both servers must have stopped cleanly, workers included.
	if err := stop(); err != nil {
		return "", err
	}
	ourIdx := len(servers) - 1
	median := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	mibs := func(rps float64, size int64) string { return fmt.Sprintf("%.0f", rps*float64(size)/(1<<20)) }
	cpuCell := func(v []float64) string {
		if len(v) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", median(v))
	}
	var s strings.Builder
	fmt.Fprintf(&s, "| file | size | wrk | nginx requests/s | nginx MiB/s | `bcpublish serve` requests/s | `bcpublish serve` MiB/s | ratio to nginx (rounds) | CPU µs/request nginx | CPU µs/request `bcpublish serve` | target |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, f := range files {
		ours := median(rps[i][ourIdx])
		ng, ngMiB, ratio, ngCPU := "(not installed: run make deps)", "", "", ""
		if len(servers) == 2 {
			n := median(rps[i][0])
			// Each round's ratio: the two servers ran one after the
			// other, under about the same load.
			var per []float64
			for r := range rps[i][0] {
				per = append(per, rps[i][ourIdx][r]/rps[i][0][r])
			}
			ng, ngMiB, ratio = fmt.Sprintf("%.0f", n), mibs(n, f.size), fmt.Sprintf("%.2f (%.2f-%.2f)", ours/n, slices.Min(per), slices.Max(per))
			ngCPU = cpuCell(cpu[i][0])
		}
		fmt.Fprintf(&s, "| %s | %s | -t%d -c%d | %s | %s | %.0f | %s | %s | %s | %s | ≥ 1.0 |\n", f.label, kib(f.size), f.wrk.threads, f.wrk.conns, ng, ngMiB, ours, mibs(ours, f.size), ratio, ngCPU, cpuCell(cpu[i][ourIdx]))
	}
	fmt.Fprintf(&s, "\nMedian of %d rounds of %s per server and file, taken in turns (in brackets: the lowest and highest ratio of a round); MiB/s is completed responses × file size; CPU µs/request is the server's user+system time (nginx: master and workers) during a run over the responses completed, median of the rounds.\n", rounds, o.duration)
	return s.String(), nil
}

func sizeName(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}
