package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The honesty rules of a serving comparison: before timing, every URL is
// fetched once with net/http and must answer 200 with exactly the file's
// bytes (length and sha256); during timing, wrk must see no non-2xx/3xx
// response and no socket error, and must have read at least the file's
// size per completed request. Any failure fails the run, naming the URL.

var verifyClient = &http.Client{
	Timeout: 5 * time.Minute,
	// A redirect is not the file.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{DisableCompression: true, Proxy: nil},
}

// verifyURL fetches url once and checks that it is the file: status 200,
// Content-Length and the bytes read equal to wantLen, sha256 equal to
// wantSHA (hex).
func verifyURL(url string, wantLen int64, wantSHA string) error {
	resp, err := verifyClient.Get(url)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("GET %s: status %d (%s), want 200: %q", url, resp.StatusCode, http.StatusText(resp.StatusCode), snippet)
	}
	if resp.ContentLength != wantLen {
		return fmt.Errorf("GET %s: Content-Length %d, want %d", url, resp.ContentLength, wantLen)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: reading the body after %d bytes: %w", url, n, err)
	}
	if n != wantLen {
		return fmt.Errorf("GET %s: read %d bytes, want %d", url, n, wantLen)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA {
		return fmt.Errorf("GET %s: sha256 %s, want %s", url, got, wantSHA)
	}
	return nil
}

// fileSum is a file's size and sha256 (hex).
func fileSum(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// wrkResult is what a wrk run did, from its Lua done() summary.
type wrkResult struct {
	requests                      int64   // completed responses
	bytes                         int64   // bytes read, headers included
	seconds                       float64 // measured duration
	status                        int64   // responses with a status above 399
	connect, read, write, timeout int64
}

func (r wrkResult) rps() float64 { return float64(r.requests) / r.seconds }

// wrkSummary prints the counts wrk keeps, one machine-readable line; wrk's
// own report (Requests/sec, Non-2xx, Socket errors) is checked too.
const wrkSummary = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCHSUMMARY requests=%.0f bytes=%.0f duration_us=%.0f status=%.0f connect=%.0f read=%.0f write=%.0f timeout=%.0f\n",
    summary.requests, summary.bytes, summary.duration, e.status, e.connect, e.read, e.write, e.timeout))
end
`

var (
	summaryRE  = regexp.MustCompile(`BENCHSUMMARY requests=(\d+) bytes=(\d+) duration_us=(\d+) status=(\d+) connect=(\d+) read=(\d+) write=(\d+) timeout=(\d+)`)
	non2xxRE   = regexp.MustCompile(`Non-2xx or 3xx responses:\s*(\d+)`)
	socketRE   = regexp.MustCompile(`Socket errors:[^\n]*`)
	requestsRE = regexp.MustCompile(`(\d+) requests in [0-9.]+\w+, [0-9.]+\w+ read`)
)

// wrkOpts are a wrk run's settings.
type wrkOpts struct {
	threads, conns int
	duration       string
	timeout        string // per request; wrk's default is 2s
	// minBytes is the least a completed response must weigh on average
	// (the file's size: headers only add to it).
	minBytes int64
	// minRequests is the least number of completed responses.
	minRequests int64
}

// wrkRun runs wrk against url and fails if any response was not 2xx/3xx,
// any socket error (connect, read, write, timeout) happened, fewer than
// minRequests completed, or fewer than minBytes were read per request.
func wrkRun(url string, o wrkOpts) (wrkResult, error) {
	var r wrkResult
	script, err := os.CreateTemp("", "bcupdate-wrk-*.lua")
	if err != nil {
		return r, err
	}
	defer os.Remove(script.Name())
	if _, err := script.WriteString(wrkSummary); err != nil {
		script.Close()
		return r, err
	}
	if err := script.Close(); err != nil {
		return r, err
	}
	args := []string{"-t" + strconv.Itoa(o.threads), "-c" + strconv.Itoa(o.conns), "-d" + o.duration, "-s", script.Name()}
	if o.timeout != "" {
		args = append(args, "--timeout", o.timeout)
	}
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
	}
	m := summaryRE.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk %s: no summary from the Lua script:\n%s", url, out)
	}
	v := make([]int64, len(m)-1)
	for i := range v {
		if v[i], err = strconv.ParseInt(string(m[i+1]), 10, 64); err != nil {
			return r, fmt.Errorf("wrk %s: %v in %q", url, err, m[0])
		}
	}
	r = wrkResult{requests: v[0], bytes: v[1], seconds: float64(v[2]) / 1e6, status: v[3], connect: v[4], read: v[5], write: v[6], timeout: v[7]}
	var errs []string
	if r.status > 0 {
		errs = append(errs, fmt.Sprintf("%d of %d responses had an error status (>399)", r.status, r.requests))
	}
	if m := non2xxRE.FindSubmatch(out); m != nil {
		errs = append(errs, fmt.Sprintf("wrk reports %s non-2xx/3xx responses", m[1]))
	}
	if r.connect+r.read+r.write+r.timeout > 0 {
		errs = append(errs, fmt.Sprintf("socket errors: connect %d, read %d, write %d, timeout %d", r.connect, r.read, r.write, r.timeout))
	} else if m := socketRE.Find(out); m != nil {
		errs = append(errs, fmt.Sprintf("wrk reports %s", m))
	}
	if requestsRE.Find(out) == nil {
		errs = append(errs, "wrk printed no \"N requests in T, B read\" line")
	}
	if r.requests < max(o.minRequests, 1) {
		errs = append(errs, fmt.Sprintf("only %d responses completed, want at least %d (lengthen -duration)", r.requests, max(o.minRequests, 1)))
	} else if per := r.bytes / r.requests; per < o.minBytes {
		errs = append(errs, fmt.Sprintf("%d bytes read per response, less than the file's %d: short bodies", per, o.minBytes))
	}
	if r.seconds <= 0 {
		errs = append(errs, "no duration")
	}
	if len(errs) > 0 {
		return r, fmt.Errorf("wrk %s: %s\n%s", url, strings.Join(errs, "; "), out)
	}
	return r, nil
}

// waitReady waits for c to listen on addr, failing early if it exits.
func waitReady(c *child, addr, log string) error {
	for i := 0; i < 200; i++ {
		if c.exited() {
			b, _ := os.ReadFile(log)
			return fmt.Errorf("%s exited before listening on %s: %v\n%s", c.name(), addr, c.err, b)
		}
		if waitPortOnce(addr) {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("%s: nothing listens on %s", c.name(), addr)
}

// startNginx starts nginx (master and two workers, in one process group)
// serving root on a free port, with its files under prefix. Stop it with
// c.stop(syscall.SIGQUIT, ...): a graceful stop, after which the master
// has reaped its workers.
func startNginx(nginx, prefix, root string) (*child, string, error) {
	return startNginxServer(nginx, prefix, fmt.Sprintf("root %s;", root))
}

// startNginxServer is startNginx with the server block's directives
// (besides listen) given: what nginx answers.
func startNginxServer(nginx, prefix, directives string) (*child, string, error) {
	addr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		return nil, "", err
	}
	// keepalive_requests: nginx closes a keep-alive connection after 1000
	// requests by default, fasthttp never; wrk would count the reconnects.
	conf := fmt.Sprintf(`worker_processes 2;
pid %s/nginx.pid;
error_log %s/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000000;
  default_type application/octet-stream;
  server {
    listen %s;
    %s
  }
}
`, prefix, prefix, addr, directives)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	logPath := filepath.Join(prefix, "logs", "stderr.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd := exec.Command(nginx, "-p", prefix, "-c", confPath, "-e", filepath.Join(prefix, "logs", "error.log"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = logf, logf
	c, err := start(cmd)
	if err != nil {
		return nil, "", err
	}
	if err := waitReady(c, addr, logPath); err != nil {
		c.stop(syscall.SIGQUIT, 10*time.Second)
		b, _ := os.ReadFile(filepath.Join(prefix, "logs", "error.log"))
		return nil, "", fmt.Errorf("%w\n%s", err, b)
	}
	return c, addr, nil
}

// startOurs starts `bcpublish serve` on the repository in repoDir.
func startOurs(bin, repoDir, logPath string) (*child, string, error) {
	addr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "bcpublish"), "serve", "--repo", repoDir, "--addr", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	c, err := start(cmd)
	if err != nil {
		return nil, "", err
	}
	if err := waitReady(c, addr, logPath); err != nil {
		c.stop(syscall.SIGTERM, 10*time.Second)
		return nil, "", err
	}
	return c, addr, nil
}

// servedFile is one file of the serving comparison.
type servedFile struct {
	label string
	path  string // URL path
	size  int64
	sum   string
	wrk   wrkOpts
}

// placeFile writes size bytes of pseudo-random data under the repository's
// targets/ (which `bcpublish serve` serves like any regular file there
// with a valid target path) and returns it as a servedFile.
func placeFile(repoDir, name string, size int64) (servedFile, error) {
	p := filepath.Join(repoDir, "targets", "bench", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return servedFile{}, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return servedFile{}, err
	}
	// Incompressible and not all one page: a counter through sha256.
	buf := make([]byte, 0, 1<<20)
	var ctr [8]byte
	for i, left := uint64(0), size; left > 0; i++ {
		for j := range ctr {
			ctr[j] = byte(i >> (8 * j))
		}
		s := sha256.Sum256(ctr[:])
		buf = append(buf, s[:]...)
		if int64(len(buf)) >= min(left, int64(cap(buf))) {
			n := min(int64(len(buf)), left)
			if _, err := f.Write(buf[:n]); err != nil {
				f.Close()
				return servedFile{}, err
			}
			left -= n
			buf = buf[:0]
		}
	}
	if err := f.Close(); err != nil {
		return servedFile{}, err
	}
	n, sum, err := fileSum(p)
	return servedFile{label: name, path: "/targets/bench/" + name, size: n, sum: sum}, err
}

// errNotReadable explains a 403 from nginx.
var errNotReadable = errors.New("is every directory down to the repository readable and searchable by nginx's worker user (nobody, when run as root)?")
