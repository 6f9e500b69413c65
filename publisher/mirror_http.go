package publisher

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"sync"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/minrate"
	"github.com/beckmanconnect/bcupdate/internal/netaddr"
)

// HTTPSource reads an upstream repository over HTTP(S), as `bcpublish
// serve`, a CDN or a web server serves it (<url>/metadata/, <url>/targets/).
// Nothing it reads is trusted: Mirror verifies every byte. Every response
// body must keep up the agent's minimum rate (MinRate bytes a second over
// each MinRateWindow spent waiting for it, internal/minrate), so a stalled
// or trickling server cannot hold a sync for ever; sizes are bounded by the
// caller. Redirects are followed, as by the agent, only to the upstream's
// own host or one of AllowHosts, and never from https to plain http except
// to loopback.
type HTTPSource struct {
	URL    string // no trailing slash
	Client *http.Client
	// MinRate and MinRateWindow are the minimum rate (zero: the
	// defaults, those of the agent: 1 KiB/s over 30 s; a negative MinRate:
	// no rule).
	MinRate       int64
	MinRateWindow time.Duration
	// AllowHosts are other hosts ("host" or "host:port") a redirect may
	// lead to. Set before the first request.
	AllowHosts []string
}

var _ MirrorSource = (*HTTPSource)(nil)

// Default timeouts and minimum rate of an HTTPSource (the rate is the
// agent's default min_rate and min_rate_window).
const (
	mirrorDialTimeout   = 15 * time.Second
	mirrorHeaderTimeout = 30 * time.Second
	mirrorMinRate       = 1 << 10
	mirrorMinRateWindow = 30 * time.Second
)

// ErrTooSlow: an upstream response body fell below the minimum rate (a
// network failure, exit code 1; what arrived of a target file is kept
// and resumed by the next sync).
var ErrTooSlow = errors.New("below the minimum rate")

// NewHTTPSource checks an upstream URL (http or https, no query, fragment
// or credentials) and returns its source.
func NewHTTPSource(raw string) (*HTTPSource, error) {
	u, err := neturl.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, usagef("%q: want https://host/path, a directory or s3://bucket/prefix", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, usagef("%s: no query, fragment or credentials allowed", u.Redacted())
	}
	// As for agents (the security sheet's TLS 1.2+): plain http only to
	// loopback, and no redirect that leaves https.
	if u.Scheme == "http" && !netaddr.IsLoopback(u.Hostname()) {
		return nil, usagef("%s: plain http is refused except to loopback; use https", u.Redacted())
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: mirrorDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: mirrorHeaderTimeout,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	h := &HTTPSource{URL: strings.TrimRight(raw, "/"), MinRate: mirrorMinRate, MinRateWindow: mirrorMinRateWindow}
	h.Client = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		return h.allowed(u, req.URL)
	}}
	return h, nil
}

// allowed is the agent's rule for a redirect: https (plain http only to
// loopback), to the upstream's own host (any port) or one of AllowHosts.
func (h *HTTPSource) allowed(from, to *neturl.URL) error {
	if to.Scheme != "https" && !(to.Scheme == "http" && netaddr.IsLoopback(to.Hostname())) {
		return fmt.Errorf("refusing a redirect to %s: plain http is refused except to loopback", to.Redacted())
	}
	host, name := strings.ToLower(to.Host), strings.ToLower(to.Hostname())
	if name == strings.ToLower(from.Hostname()) {
		return nil
	}
	for _, a := range h.AllowHosts {
		if a = strings.ToLower(a); a == host || a == name {
			return nil
		}
	}
	return fmt.Errorf("refusing a redirect to %s: host %s is not the upstream's host %s", to.Redacted(), to.Host, from.Hostname())
}

// Read GETs a small object; a 404 is fs.ErrNotExist.
func (h *HTTPSource) Read(ctx context.Context, name string, limit int64) ([]byte, error) {
	body, _, err := h.get(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", h.URL, name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s/%s: larger than the limit of %d bytes", h.URL, name, limit)
	}
	return b, nil
}

// Open GETs an object from byte off (a Range request); a server that
// ignores the range sends it whole (start 0).
func (h *HTTPSource) Open(ctx context.Context, name string, off int64) (io.ReadCloser, int64, error) {
	return h.get(ctx, name, off)
}

func (h *HTTPSource) get(ctx context.Context, name string, off int64) (io.ReadCloser, int64, error) {
	u := h.URL + "/" + name
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel(nil)
		return nil, 0, err
	}
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, 0, fmt.Errorf("cannot reach %s: %w", h.URL, err)
	}
	start := int64(0)
	switch {
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err != nil || start != off {
			resp.Body.Close()
			cancel(nil)
			return nil, 0, fmt.Errorf("%s: answered the range %d- with %q", u, off, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		cancel(nil)
		return nil, 0, fmt.Errorf("%s: %w", u, fs.ErrNotExist)
	default:
		resp.Body.Close()
		cancel(nil)
		return nil, 0, fmt.Errorf("%s: the server answered %s", u, resp.Status)
	}
	rule := minrate.Rule{Min: h.MinRate, Window: h.MinRateWindow}
	if rule.Min == 0 {
		rule.Min = mirrorMinRate
	}
	if rule.Window == 0 {
		rule.Window = mirrorMinRateWindow
	}
	slow := func(got int64) error {
		return fmt.Errorf("%s is too slow: %d bytes arrived in %s, %w of %d bytes a second; the server or the network is too slow", u, got, rule.Window, ErrTooSlow, rule.Min)
	}
	guard := minrate.NewBody(resp.Body, rule, cancel, slow)
	return &rateBody{guard: guard, body: resp.Body, cancel: cancel}, start, nil
}

// rateBody is a response body under the minimum-rate rule.
type rateBody struct {
	guard  *minrate.Body
	body   io.ReadCloser
	cancel context.CancelCauseFunc
	once   sync.Once
}

func (b *rateBody) Read(p []byte) (int, error) { return b.guard.Read(p) }

func (b *rateBody) Close() error {
	b.guard.Close()
	err := b.body.Close()
	b.once.Do(func() { b.cancel(nil) })
	return err
}
