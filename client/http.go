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
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
)

// Network settings.
const (
	dialTimeout     = 15 * time.Second
	headerTimeout   = 30 * time.Second
	metadataTimeout = 60 * time.Second
	maxAttempts     = 3
	retryBase       = 250 * time.Millisecond
)

// UserAgent is sent with every request.
var UserAgent = "bcagent/dev"

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
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return fmt.Errorf("refusing %s: only https is allowed (plain http only to loopback)", u.Redacted())
	}
	if !a.hosts[strings.ToLower(u.Host)] && !a.hosts[strings.ToLower(u.Hostname())] {
		return fmt.Errorf("refusing %s: host %s is not the repository host or in allowed_hosts", u.Redacted(), u.Host)
	}
	return nil
}

type guardedTransport struct {
	allow *allowList
	next  http.RoundTripper
}

func (g *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.allow.check(req.URL); err != nil {
		return nil, err
	}
	return g.next.RoundTrip(req)
}

// newHTTPClient is the agent's only way onto the network: TLS 1.2 or later,
// the allow list enforced on every request and redirect, timeouts, no
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
		Transport: &guardedTransport{allow: allow, next: tr},
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
// at once, and reads at most maxLength bytes.
type httpFetcher struct {
	ctx    context.Context
	client *http.Client
}

var _ fetcher.Fetcher = (*httpFetcher)(nil)

func (f *httpFetcher) DownloadFile(urlPath string, maxLength int64, _ time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(f.ctx, metadataTimeout)
	defer cancel()
	var data []byte
	err := f.withRetries(ctx, urlPath, func(resp *http.Response) error {
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
// everything else is returned at once.
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
	req.Header.Set("User-Agent", UserAgent)
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
		if errors.As(err, &lm) || errors.As(err, &lh) {
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
	req.Header.Set("User-Agent", UserAgent)
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
	n, err = io.CopyBuffer(w, io.LimitReader(resp.Body, length-off+1), make([]byte, 1<<20))
	if err == nil && n > length-off {
		return n, restarted, permanent{&metadata.ErrDownloadLengthMismatch{Msg: "more bytes than the signed length"}}
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
	return n, err
}
