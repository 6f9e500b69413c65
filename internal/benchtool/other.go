package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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
		return "| delta | not measured: bsdiff is not installed |\n|---|---|\n", nil
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

var rpsRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrk(url, duration string) (float64, error) {
	out, err := exec.Command("wrk", "-t2", "-c32", "-d"+duration, url).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %v %s", err, out)
	}
	m := rpsRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk printed no rate: %s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitPort(addr string) error {
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

// serveBench: `bcpublish serve` against nginx serving the same directory,
// requests per second for timestamp.json with wrk: three rounds taken in
// turns, the median of each.
func serveBench(o options) (string, error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return "| serve | not measured: wrk is not installed |\n|---|---|\n", nil
	}
	nginx, nerr := exec.LookPath("nginx")
	w, err := newWorld(0)
	if err != nil {
		return "", err
	}
	defer w.close()
	addr, err := freePort()
	if err != nil {
		return "", err
	}
	ours := exec.Command(filepath.Join(o.bin, "bcpublish"), "serve", "--repo", w.store.Dir, "--addr", addr)
	if err := ours.Start(); err != nil {
		return "", err
	}
	defer func() { ours.Process.Kill(); ours.Wait() }()
	if err := waitPort(addr); err != nil {
		return "", err
	}
	urls := []string{"http://" + addr + "/metadata/timestamp.json"}
	if nerr == nil {
		naddr, err := freePort()
		if err != nil {
			return "", err
		}
		prefix := filepath.Join(w.dir, "nginx")
		os.MkdirAll(filepath.Join(prefix, "logs"), 0o755)
		conf := fmt.Sprintf(`worker_processes 2;
pid %s/nginx.pid;
error_log %s/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  server {
    listen %s;
    root %s;
  }
}
`, prefix, prefix, naddr, w.store.Dir)
		os.WriteFile(filepath.Join(prefix, "nginx.conf"), []byte(conf), 0o644)
		ng := exec.Command(nginx, "-p", prefix, "-c", filepath.Join(prefix, "nginx.conf"), "-g", "daemon off;")
		if err := ng.Start(); err != nil {
			return "", err
		}
		// SIGTERM to the master stops its workers too (SIGKILL would leave
		// them running, still listening); SIGKILL only if it hangs.
		defer func() {
			ng.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { ng.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				ng.Process.Kill()
				<-done
			}
		}()
		if err := waitPort(naddr); err != nil {
			return "", err
		}
		urls = append(urls, "http://"+naddr+"/metadata/timestamp.json")
	}
	rounds := 3
	if o.quick {
		rounds = 1
	}
	rps := make([][]float64, len(urls))
	for r := 0; r < rounds; r++ {
		for i, u := range urls {
			v, err := wrk(u, o.duration)
			if err != nil {
				return "", err
			}
			rps[i] = append(rps[i], v)
		}
	}
	median := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	var s strings.Builder
	fmt.Fprintf(&s, "| server | requests/s for timestamp.json (median of %d) | ratio to nginx | target |\n|---|---|---|---|\n", rounds)
	oursRPS := median(rps[0])
	if len(urls) == 1 {
		fmt.Fprintf(&s, "| `bcpublish serve` | %.0f | (nginx is not installed) | ≥ 0.8 |\n", oursRPS)
		return s.String(), nil
	}
	ngRPS := median(rps[1])
	fmt.Fprintf(&s, "| nginx (2 workers, sendfile) | %.0f | 1.00 | |\n", ngRPS)
	fmt.Fprintf(&s, "| `bcpublish serve` (fasthttp) | %.0f | %.2f | ≥ 0.8 |\n", oursRPS, oursRPS/ngRPS)
	return s.String(), nil
}
