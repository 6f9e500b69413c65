package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"

	"github.com/beckmanconnect/bcupdate/internal/minrate"
	"github.com/beckmanconnect/bcupdate/internal/netaddr"
)

// Network settings. There is no overall time limit on a download: the
// minimum-rate rule (rateRule) bounds how long a server may take, and a
// large file on a slow but steady link still arrives.
const (
	dialTimeout   = 15 * time.Second
	headerTimeout = 30 * time.Second
	maxAttempts   = 3
	retryBase     = 250 * time.Millisecond
)

// defaultUserAgent is sent when the opener names no user agent
// (OpenOptions.UserAgent; tests, the conformance client).
const defaultUserAgent = "bcagent/dev"

// allowList is the set of hosts the agent may talk to.
type allowList struct {
	hosts map[string]bool // "host" or "host:port", lower case
}

func newAllowList(repoURL string, extra []string) (*allowList, error) {
	u, err := neturl.Parse(repoURL)
	if err != nil {
		return nil, err
	}
	a := &allowList{hosts: map[string]bool{strings.ToLower(u.Host): true, strings.ToLower(u.Hostname()): true}}
	for _, h := range extra {
		a.hosts[strings.ToLower(h)] = true
	}
	return a, nil
}

func (a *allowList) check(u *neturl.URL) error {
	if u.Scheme != "https" && !(u.Scheme == "http" && netaddr.IsLoopback(u.Hostname())) {
		return fmt.Errorf("refusing %s: only https is allowed (plain http only to loopback)", u.Redacted())
	}
	if !a.hosts[strings.ToLower(u.Host)] && !a.hosts[strings.ToLower(u.Hostname())] {
		return fmt.Errorf("refusing %s: host %s is not the repository host or in allowed_hosts", u.Redacted(), u.Host)
	}
	return nil
}

// guardedTransport is the agent's one RoundTripper: every request of the
// agent goes through it (go-tuf's metadata downloads through httpFetcher,
// small targets, artifacts and deltas alike), so the allow list and the
// minimum-rate rule are enforced once, here.
type guardedTransport struct {
	allow *allowList
	next  http.RoundTripper
	// rule is the minimum rate every response body must keep up. It,
	// observe and userAgent are set before the first request and not
	// changed after.
	rule rateRule
	// observe, if set, is told how far each response body has got
	// (activity.json).
	observe func(u *neturl.URL, done, total int64, finished bool)
	// userAgent is the User-Agent header of every request
	// (OpenOptions.UserAgent).
	userAgent string
}

func (g *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.allow.check(req.URL); err != nil {
		return nil, err
	}
	// The body guard stops a body that is too slow by cancelling this
	// request's own context, with the reason as its cause.
	ctx, cancel := context.WithCancelCause(req.Context())
	out := req.WithContext(ctx)
	if g.userAgent != "" && req.Header.Get("User-Agent") != g.userAgent {
		out = req.Clone(ctx) // a RoundTripper must not change the caller's request
		out.Header.Set("User-Agent", g.userAgent)
	}
	resp, err := g.next.RoundTrip(out)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = newRateGuard(resp, req.URL, g.rule, cancel, g.observe)
	return resp, nil
}

// newHTTPClient is the agent's only way onto the network: TLS 1.2 or later,
// the allow list enforced on every request and redirect, timeouts, the
// default minimum-rate rule (Open sets the configured one), no
// proxy-from-environment surprises beyond the standard ones.
func newHTTPClient(repoURL string, allowed []string) (*http.Client, error) {
	allow, err := newAllowList(repoURL, allowed)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: &guardedTransport{allow: allow, next: tr, rule: defaultRateRule, userAgent: defaultUserAgent},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return allow.check(req.URL)
		},
	}, nil
}

// httpFetcher is the go-tuf fetcher.Fetcher the agent uses: it carries the
// context of one check, retries only network errors and 5xx, returns a 404
// or a server below the minimum rate at once, and reads at most maxLength
// bytes.
type httpFetcher struct {
	ctx    context.Context
	client *http.Client
}

var _ fetcher.Fetcher = (*httpFetcher)(nil)

func (f *httpFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	var data []byte
	err := f.withRetries(f.ctx, urlPath, func(resp *http.Response) error {
		if resp.ContentLength > maxLength {
			return &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: length %d is larger than the limit %d", urlPath, resp.ContentLength, maxLength)}
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
		if err != nil {
			return err
		}
		if int64(len(b)) > maxLength {
			return &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: more than the limit of %d bytes", urlPath, maxLength)}
		}
		data = b
		return nil
	})
	return data, err
}

type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// withRetries GETs url and hands a 200 (or
// 206) response to read. Network errors and 5xx are retried with backoff;
// everything else is returned at once, and so is a server below the
// minimum rate (it has had a whole window to answer; the next check or
// stage tries again).
func (f *httpFetcher) withRetries(ctx context.Context, u string, read func(*http.Response) error) error {
	var last error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retryBase << (attempt - 1)):
			}
		}
		err := f.once(ctx, u, read)
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		if ctx.Err() != nil {
			return err
		}
		last = err
	}
	return last
}

func (f *httpFetcher) once(ctx context.Context, u string, read func(*http.Response) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return permanent{err}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		var uerr *neturl.Error
		if errors.As(err, &uerr) && strings.HasPrefix(uerr.Err.Error(), "refusing ") {
			return permanent{err}
		}
		return err // network error: retry
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: u}
	default:
		return permanent{&metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: u}}
	}
	if err := read(resp); err != nil {
		var lm *metadata.ErrDownloadLengthMismatch
		var lh *metadata.ErrLengthOrHashMismatch
		if errors.As(err, &lm) || errors.As(err, &lh) || errors.Is(err, ErrTooSlow) {
			return permanent{err}
		}
		return err
	}
	return nil
}

// hashingWriter counts and hashes what goes through it.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func newHashingWriter(w io.Writer) *hashingWriter { return &hashingWriter{w: w, h: sha256.New()} }

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

func (hw *hashingWriter) sum() string { return hex.EncodeToString(hw.h.Sum(nil)) }

// fetchRange GETs url from byte offset off (a Range request when off > 0)
// into w, reading at most length-off bytes. A server that ignores the range
// and answers 200 makes it call restart and take the whole body. It returns
// the bytes written since the (re)start.
func (f *httpFetcher) fetchRange(ctx context.Context, url string, off, length int64, w io.Writer, restart func() error) (n int64, restarted bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false, permanent{err}
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := f.client.Do(req)
	if err != nil {
		var uerr *neturl.Error
		if errors.As(err, &uerr) && strings.HasPrefix(uerr.Err.Error(), "refusing ") {
			return 0, false, permanent{err}
		}
		return 0, false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		var start int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != off {
			return 0, false, permanent{fmt.Errorf("server answered range %d- with %q", off, resp.Header.Get("Content-Range"))}
		}
	case resp.StatusCode == http.StatusOK:
		if off > 0 {
			if err := restart(); err != nil {
				return 0, false, permanent{err}
			}
			restarted, off = true, 0
		}
	case resp.StatusCode >= 500:
		return 0, false, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: url}
	default:
		return 0, false, permanent{&metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: url}}
	}
	if resp.ContentLength > length-off {
		return 0, restarted, permanent{&metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("server sends %d bytes, %d remain of the signed length", resp.ContentLength, length-off)}}
	}
	body := io.LimitReader(resp.Body, length-off+1)
	if rf, ok := w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(body) // the pipeline: straight into its chunks
	} else {
		n, err = io.CopyBuffer(w, body, make([]byte, 1<<20))
	}
	if err == nil && n > length-off {
		return n, restarted, permanent{&metadata.ErrDownloadLengthMismatch{Msg: "more bytes than the signed length"}}
	}
	if errors.Is(err, ErrTooSlow) {
		// Not retried now: what arrived is kept, and the next stage
		// resumes from it.
		return n, restarted, permanent{err}
	}
	return n, restarted, err
}

// meteredWriter caps the write rate (bytes per second, 0: none) and reports
// progress.
type meteredWriter struct {
	w        io.Writer
	rate     int64
	start    time.Time
	n        int64
	base     int64
	total    int64
	progress func(done, total int64)
	reported int64
}

func (m *meteredWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	m.count(n)
	return n, err
}

// ReadFrom lets a writer below that reads for itself (the pipeline) read
// r directly, metering each read as Write meters each write.
func (m *meteredWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := m.w.(io.ReaderFrom); ok {
		return rf.ReadFrom(meteredReader{r, m})
	}
	return io.CopyBuffer(struct{ io.Writer }{m}, r, make([]byte, 1<<20))
}

type meteredReader struct {
	r io.Reader
	m *meteredWriter
}

func (mr meteredReader) Read(p []byte) (int, error) {
	n, err := mr.r.Read(p)
	mr.m.count(n)
	return n, err
}

// count accounts for n more bytes: the rate cap and progress.
func (m *meteredWriter) count(n int) {
	m.n += int64(n)
	if m.rate > 0 {
		want := time.Duration(float64(m.n) / float64(m.rate) * float64(time.Second))
		if ahead := want - time.Since(m.start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	if m.progress != nil && (m.n-m.reported >= 256<<10 || m.base+m.n == m.total) {
		m.reported = m.n
		m.progress(m.base+m.n, m.total)
	}
}

// The minimum-rate rule (TUF's slow-retrieval protection). A server, or
// someone in the network path, that sends a file at a trickle could hold
// the agent, and the state directory with it, for as long as it likes:
// every response body the agent reads must bring at least min bytes a
// second, judged over each window of time spent waiting for it. Only
// the time the agent spends waiting in Read counts: time the agent itself
// spends elsewhere (writing to disk, the max_rate cap) is not the
// server's fault. A body that falls below the rule is stopped with a
// *SlowError (ErrTooSlow, a network failure: exit code 1).
type rateRule struct {
	min    int64         // bytes per second; 0: no rule
	window time.Duration // judged over this much waiting
}

// Defaults and ranges of min_rate and min_rate_window (config.json).
const (
	DefaultMinRate       = 1 << 10 // 1 KiB/s: fewer than 30 KiB in 30 s fails
	DefaultMinRateWindow = 30 * time.Second
)

var defaultRateRule = rateRule{min: DefaultMinRate, window: DefaultMinRateWindow}

// SlowError says that a download fell below the minimum rate. It is
// ErrTooSlow and a go-tuf download error, never a verification failure.
type SlowError struct {
	URL    string        // the URL (redacted) that was too slow
	Got    int64         // bytes that arrived in the window
	Window time.Duration // the window: time spent waiting for the server
	Min    int64         // the minimum rate, bytes per second
}

func (e *SlowError) Error() string {
	rate := float64(e.Got) / e.Window.Seconds()
	return fmt.Sprintf("%s is too slow: %s arrived in %s (%s/s), below the minimum rate of %s/s (min_rate %d, min_rate_window %s); the server or the network is too slow",
		e.URL, formatBytes(float64(e.Got)), shortDuration(e.Window), formatBytes(rate), formatBytes(float64(e.Min)), e.Min, shortDuration(e.Window))
}

// Unwrap makes a SlowError match ErrTooSlow and go-tuf's ErrDownload (so a
// delegation walk that meets it fails instead of finding nothing).
func (e *SlowError) Unwrap() []error {
	return []error{ErrTooSlow, &metadata.ErrDownload{Msg: e.Error()}}
}

// Timeout reports true: a SlowError is a network timeout (net.Error).
func (e *SlowError) Timeout() bool { return true }

// Temporary reports true (net.Error): the next attempt may be faster.
func (e *SlowError) Temporary() bool { return true }

// rateGuard is a response body that enforces a rateRule (the shared
// minrate.Body: while a Read waits for the server a timer runs; at the end
// of each window of waiting the bytes that arrived in it are counted, and
// too few cancel the request, its context's cause being the *SlowError,
// which Read returns). A body that breaks off otherwise (connection reset,
// cut short) returns a *BodyError: a network failure, whatever error the
// connection gave.
type rateGuard struct {
	body    io.ReadCloser
	rule    *minrate.Body
	url     *neturl.URL
	cancel  context.CancelCauseFunc
	observe func(u *neturl.URL, done, total int64, finished bool)
	total   int64 // the whole file, -1 if unknown

	mu   sync.Mutex
	done int64 // bytes of the file so far (from the range start)
}

func newRateGuard(resp *http.Response, u *neturl.URL, rule rateRule, cancel context.CancelCauseFunc, observe func(*neturl.URL, int64, int64, bool)) *rateGuard {
	g := &rateGuard{body: resp.Body, url: u, cancel: cancel, observe: observe, total: resp.ContentLength}
	g.rule = minrate.NewBody(resp.Body, minrate.Rule{Min: rule.min, Window: rule.window}, cancel, func(got int64) error {
		return &SlowError{URL: u.Redacted(), Got: got, Window: rule.window, Min: rule.min}
	})
	if resp.StatusCode == http.StatusPartialContent {
		// "bytes START-END/TOTAL": progress counts from START.
		var start, end, total int64
		if n, _ := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total); n == 3 {
			g.done, g.total = start, total
		}
	}
	return g
}

func (g *rateGuard) Read(p []byte) (int, error) {
	n, err := g.rule.Read(p)
	if n > 0 {
		g.mu.Lock()
		g.done += int64(n)
		done := g.done
		g.mu.Unlock()
		if g.observe != nil {
			g.observe(g.url, done, g.total, false)
		}
	}
	if slow := g.rule.Err(); slow != nil && err == slow {
		return n, err
	}
	return n, g.broken(err)
}

// broken marks an error of the connection as a network failure.
func (g *rateGuard) broken(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return &BodyError{URL: g.url.Redacted(), Err: err}
}

// BodyError says that a response body broke off (the connection was reset
// or closed before the promised length, a TLS or HTTP/2 error): a network
// failure, never a verification failure, even when the error it wraps is
// io.ErrUnexpectedEOF.
type BodyError struct {
	URL string
	Err error
}

func (e *BodyError) Error() string { return fmt.Sprintf("reading %s: %v", e.URL, e.Err) }

// Unwrap makes a BodyError match its cause and go-tuf's ErrDownload.
func (e *BodyError) Unwrap() []error {
	return []error{e.Err, &metadata.ErrDownload{Msg: e.Error()}}
}

func (g *rateGuard) Close() error {
	g.rule.Close()
	g.mu.Lock()
	done, total := g.done, g.total
	g.mu.Unlock()
	err := g.body.Close()
	g.cancel(context.Canceled)
	if g.observe != nil {
		g.observe(g.url, done, total, true)
	}
	return err
}

// formatBytes renders a size or rate for people: 30 B, 4.0 KiB, 34.2 MiB.
func formatBytes(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%.0f B", n)
	}
	suffixes := []string{"KiB", "MiB", "GiB", "TiB"}
	i := -1
	for n >= unit && i < len(suffixes)-1 {
		n /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", n, suffixes[i])
}

// SetMinRate sets the minimum-rate rule of the agent's downloads: at least
// rate bytes per second over each window of time spent waiting for the
// server (0: no rule). Open sets config.json's (min_rate,
// min_rate_window); tests set a short window. Call it before the agent
// downloads anything. It checks no range.
func (a *Agent) SetMinRate(rate int64, window time.Duration) {
	if gt, ok := a.http.Transport.(*guardedTransport); ok {
		gt.rule = rateRule{min: rate, window: window}
		if window <= 0 {
			gt.rule.min = 0
		}
	}
}
