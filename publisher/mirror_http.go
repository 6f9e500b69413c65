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

	"github.com/beckmanconnect/bcupdate/internal/netaddr"
)

// HTTPSource reads an upstream repository over HTTP(S), as `bcpublish
// serve`, a CDN or a web server serves it (<url>/metadata/, <url>/targets/).
// Nothing it reads is trusted: Mirror verifies every byte. A body that
// brings nothing for IdleTimeout is stopped (a stalled or trickling server
// cannot hold the mirror for ever); sizes are bounded by the caller.
type HTTPSource struct {
	URL         string // no trailing slash
	Client      *http.Client
	IdleTimeout time.Duration
}

var _ MirrorSource = (*HTTPSource)(nil)

// Default timeouts of an HTTPSource.
const (
	mirrorDialTimeout   = 15 * time.Second
	mirrorHeaderTimeout = 30 * time.Second
	mirrorIdleTimeout   = 60 * time.Second
)

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
	client := &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		if req.URL.Scheme != "https" && !(req.URL.Scheme == "http" && netaddr.IsLoopback(req.URL.Hostname())) {
			return fmt.Errorf("refusing a redirect to %s: plain http is refused except to loopback", req.URL.Redacted())
		}
		return nil
	}}
	return &HTTPSource{URL: strings.TrimRight(raw, "/"), Client: client, IdleTimeout: mirrorIdleTimeout}, nil
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
	idle := h.IdleTimeout
	if idle <= 0 {
		idle = mirrorIdleTimeout
	}
	return &idleBody{body: resp.Body, cancel: cancel, idle: idle, url: u}, start, nil
}

// errIdle: a response body brought nothing for the idle timeout.
var errIdle = errors.New("the server sent nothing")

// idleBody stops a response body whose Read waits longer than idle.
type idleBody struct {
	body   io.ReadCloser
	cancel context.CancelCauseFunc
	idle   time.Duration
	url    string
	once   sync.Once
}

func (b *idleBody) Read(p []byte) (int, error) {
	t := time.AfterFunc(b.idle, func() { b.cancel(fmt.Errorf("%s: %w for %s", b.url, errIdle, b.idle)) })
	n, err := b.body.Read(p)
	if !t.Stop() && err != nil && err != io.EOF {
		return n, fmt.Errorf("%s: %w for %s", b.url, errIdle, b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.body.Close()
	b.once.Do(func() { b.cancel(nil) })
	return err
}
