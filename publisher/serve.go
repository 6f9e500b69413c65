package publisher

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/beckmanconnect/bcupdate/repo"
)

// maxTLSFile bounds --tls-cert and --tls-key.
const maxTLSFile = 1 << 20

// metaCacheMax bounds the metadata kept in memory by the handler.
const (
	metaCacheMax     = 64 << 10 // per file
	metaCacheEntries = 4096
)

type cached struct {
	data []byte
	// of timestamp.json read from a DirStore: the file read, to tell
	// with one stat whether it is still the one at its path
	fi   fs.FileInfo
	path string
}

// repoServer is what both HTTP front ends share: the store, the metadata
// kept in memory, and the decision of what a path gets.
type repoServer struct {
	s       Store
	dir     *dirServer // s, when it is a DirStore
	log     *slog.Logger
	cache   sync.Map
	entries atomic.Int64
}

func newRepoServer(s Store, log *slog.Logger) *repoServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sv := &repoServer{s: s, log: log}
	if d, ok := s.(*DirStore); ok {
		sv.dir = d.server()
	}
	return sv
}

// fresh says whether a cached metadata file may be served as is.
func (sv *repoServer) fresh(p string, c cached) bool {
	if p != "/metadata/timestamp.json" {
		return true // versioned metadata never changes
	}
	if sv.dir != nil && c.fi != nil {
		return sv.dir.unchanged(c.path, c.fi)
	}
	return false // no cheap way to know: read it every time
}

// resource is what a GET of a path gets: metadata from memory (data), a
// stream from the store (body), or a status with no body.
type resource struct {
	status int
	data   []byte
	body   io.ReadCloser
	size   int64 // of body, when known without seeking (else -1)
}

var (
	jsonType  = []string{"application/json"}
	octets    = []string{"application/octet-stream"}
	noCache   = []string{"no-cache"}
	immutable = []string{"public, max-age=31536000, immutable"}
)

// headersFor gives a served path's Content-Type and Cache-Control.
func headersFor(p string) (contentType, cacheControl []string) {
	contentType, cacheControl = octets, immutable
	if strings.HasSuffix(p, ".json") {
		contentType = jsonType
	}
	if p == "/metadata/timestamp.json" {
		// Versioned metadata and hash-named targets never change; this does.
		cacheControl = noCache
	}
	return contentType, cacheControl
}

// find decides what p (a decoded URL path) gets. Only metadata/ and
// targets/ are served, under the repository's path rules (no "..", no
// directories).
func (sv *repoServer) find(ctx context.Context, p string) resource {
	// Fast path: metadata already in memory (it passed the checks below
	// when it was first served).
	if v, ok := sv.cache.Load(p); ok {
		if c := v.(cached); sv.fresh(p, c) {
			return resource{status: http.StatusOK, data: c.data}
		}
	}
	var name string
	switch {
	case strings.HasPrefix(p, "/metadata/"):
		name = strings.TrimPrefix(p, "/metadata/")
	case strings.HasPrefix(p, "/targets/"):
		name = strings.TrimPrefix(p, "/targets/")
	default:
		return resource{status: http.StatusNotFound}
	}
	if repo.ValidateTargetPath(name) != nil {
		return resource{status: http.StatusNotFound}
	}
	key := strings.TrimPrefix(p, "/")
	if strings.HasPrefix(p, "/metadata/") {
		var c cached
		var data []byte
		var err error
		if sv.dir != nil {
			data, c.fi, err = sv.dir.read(key, metaCacheMax)
			if err == nil && int64(len(data)) != c.fi.Size() {
				c.fi = nil // changed while read: never fresh
			}
			c.path = sv.dir.pathOf(key)
		} else {
			data, _, err = sv.s.Read(ctx, key, metaCacheMax)
		}
		c.data = data
		if err == nil {
			if _, had := sv.cache.Swap(p, c); !had && sv.entries.Add(1) > metaCacheEntries {
				sv.cache.Clear()
				sv.entries.Store(0)
			}
			return resource{status: http.StatusOK, data: data}
		}
		if errors.Is(err, fs.ErrNotExist) {
			return resource{status: http.StatusNotFound}
		}
		if errors.Is(err, ErrOutside) {
			return sv.outside(p, err)
		}
		// Too large for the cache: stream it below.
	}
	var rc io.ReadCloser
	size := int64(-1)
	var err error
	if sv.dir != nil {
		var f *os.File
		var fi fs.FileInfo
		if f, fi, err = sv.dir.open(key); err == nil {
			rc, size = f, fi.Size()
		}
	} else {
		rc, err = sv.s.Get(ctx, key)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return resource{status: http.StatusNotFound}
	}
	if errors.Is(err, ErrOutside) {
		return sv.outside(p, err)
	}
	if err != nil {
		sv.log.Error("serve", "path", p, "err", err)
		return resource{status: http.StatusInternalServerError}
	}
	return resource{status: http.StatusOK, body: rc, size: size}
}

// outside answers a path whose file is a symbolic link out of the
// repository directory: a 404 like any missing file (the client learns
// nothing about the machine), and a warning for the operator.
func (sv *repoServer) outside(p string, err error) resource {
	sv.log.Warn("serve: refused a symbolic link out of the repository", "path", p, "err", err)
	return resource{status: http.StatusNotFound}
}

// Handler serves a store's metadata/ and targets/ over HTTP GET and HEAD
// (net/http), with real 404s and no directory listings. Small metadata is
// served from memory: versioned files never change, and timestamp.json is
// served from memory only while the store says (by modification time and
// size) that it has not changed. A DirStore never follows a symbolic link
// out of its directory: such a path is a 404. Serve uses the same rules with a faster
// HTTP engine; Handler is for embedding (and tests).
func Handler(s Store, log *slog.Logger) http.Handler {
	sv := newRepoServer(s, log)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := req.URL.Path
		res := sv.find(req.Context(), p)
		if res.status != http.StatusOK {
			http.Error(w, strings.ToLower(http.StatusText(res.status)), res.status)
			return
		}
		h := w.Header()
		h["Content-Type"], h["Cache-Control"] = headersFor(p)
		if res.body == nil {
			h["Content-Length"] = []string{strconv.Itoa(len(res.data))}
			if req.Method == http.MethodGet {
				w.Write(res.data)
			}
			return
		}
		defer res.body.Close()
		if rs, ok := res.body.(io.ReadSeeker); ok {
			http.ServeContent(w, req, "", time.Time{}, rs)
			return
		}
		if req.Method == http.MethodGet {
			io.Copy(w, res.body)
		}
	})
}

// ServeOptions configure Serve.
type ServeOptions struct {
	Addr    string // default 127.0.0.1:8080
	TLSCert string
	TLSKey  string
	// Ready is called with the URL once the listener is open.
	Ready func(url string)
	Log   *slog.Logger
}

// listenErr says what to do when --addr cannot be listened on.
func listenErr(addr string, err error) error {
	var ae *net.AddrError
	var de *net.DNSError
	switch {
	case errors.As(err, &de):
		return usagef("--addr %s: the host name does not resolve; give an address of this machine, such as 127.0.0.1:8080 or :8443 (%w)", addr, err)
	case errors.As(err, &ae):
		return usagef("--addr %s: want HOST:PORT, such as 127.0.0.1:8080 or :8443 (%w)", addr, err)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("--addr %s: the port is in use (another bcpublish serve?); give another port, or port 0 for a free one: %w", addr, err)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("--addr %s: this user may not listen on that port; give a port above 1023 (and a proxy in front for 80 or 443): %w", addr, err)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return usagef("--addr %s: no network interface of this machine has that address; give one of its addresses, or 0.0.0.0 for all: %w", addr, err)
	}
	return fmt.Errorf("--addr %s: %w", addr, err)
}

// Serve serves a store until ctx is cancelled, then shuts down gracefully.
// It answers as Handler does, on fasthttp: a gateway that thousands of
// agents poll spends its time on timestamp.json, and net/http costs about
// twice nginx's CPU per such request (docs/performance.md).
func Serve(ctx context.Context, s Store, o ServeOptions) error {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8080"
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	var tlsConfig *tls.Config
	if o.TLSCert != "" {
		certPEM, err := readSmall("--tls-cert", o.TLSCert, maxTLSFile)
		if err != nil {
			return err
		}
		keyPEM, err := readSmall("--tls-key", o.TLSKey, maxTLSFile)
		if err != nil {
			return err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return usagef("--tls-cert %s and --tls-key %s are not a PEM certificate (chain) and its own private key: %w", o.TLSCert, o.TLSKey, err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return listenErr(o.Addr, err)
	}
	scheme := "http"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		scheme = "https"
	}
	sv := newRepoServer(s, o.Log)
	srv := &fasthttp.Server{
		Handler:               sv.serveFast,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		ReadTimeout:           10 * time.Second,
		IdleTimeout:           60 * time.Second,
		MaxRequestBodySize:    4 << 10, // GET and HEAD only
		CloseOnShutdown:       true,
		Logger:                fastLogger{sv.log},
	}
	if o.Ready != nil {
		o.Ready(scheme + "://" + ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.ShutdownWithContext(sctx)
	}
}

// Cache-Control for fasthttp as headersFor gives it, made once
// (SetCanonical copies them).
var (
	cacheControlKey = []byte("Cache-Control")
	noCacheBytes    = []byte(noCache[0])
	immutableBytes  = []byte(immutable[0])
)

// serveFast is Handler's twin on fasthttp.
func (sv *repoServer) serveFast(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed", http.StatusMethodNotAllowed) // resets the headers
		h.Set("Allow", "GET, HEAD")
		return
	}
	// The decoded path, as net/http gives it: no normalizing, so
	// "/targets/../x" is refused like in Handler, not resolved.
	p, err := url.PathUnescape(string(ctx.URI().PathOriginal()))
	if err != nil {
		ctx.Error("not found", http.StatusNotFound)
		return
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	res := sv.find(ctx, p)
	if res.status != http.StatusOK {
		ctx.Error(strings.ToLower(http.StatusText(res.status)), res.status)
		return
	}
	ct, _ := headersFor(p)
	h.SetContentType(ct[0])
	cc := immutableBytes
	if p == "/metadata/timestamp.json" {
		cc = noCacheBytes
	}
	h.SetCanonical(cacheControlKey, cc)
	if res.body == nil {
		ctx.Response.SetBodyRaw(res.data) // cached bytes are never modified
		return
	}
	size := res.size
	var body io.Reader = res.body
	if rs, ok := res.body.(io.ReadSeeker); ok {
		if size < 0 {
			if size, err = rs.Seek(0, io.SeekEnd); err == nil {
				_, err = rs.Seek(0, io.SeekStart)
			}
		}
		if err != nil {
			res.body.Close()
			sv.log.Error("serve", "path", p, "err", err)
			ctx.Error("internal server error", http.StatusInternalServerError)
			return
		}
		h.Set("Accept-Ranges", "bytes")
		// One range, and not with If-Range (we send no validators): a
		// server may always answer a Range request with the whole body.
		if rg := ctx.Request.Header.Peek("Range"); len(rg) > 0 && !bytes.Contains(rg, []byte(",")) && len(ctx.Request.Header.Peek("If-Range")) == 0 {
			start, end, err := fasthttp.ParseByteRange(rg, int(size))
			if err != nil {
				res.body.Close()
				ctx.Error("range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
				h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
				return
			}
			if _, err := rs.Seek(int64(start), io.SeekStart); err != nil {
				res.body.Close()
				ctx.Error("internal server error", http.StatusInternalServerError)
				return
			}
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
			ctx.SetStatusCode(http.StatusPartialContent)
			size = int64(end - start + 1)
			body = io.LimitReader(res.body, size)
		}
	}
	if ctx.IsHead() {
		res.body.Close()
		if size >= 0 {
			h.SetContentLength(int(size))
		}
		ctx.Response.SkipBody = true
		return
	}
	if f, ok := res.body.(*os.File); ok && size >= 0 {
		// The file itself, positioned at the start of what is sent: with
		// the Content-Length set, fasthttp sends exactly size bytes and,
		// from an *os.File to a TCP connection, does so with sendfile(2)
		// instead of copying through its 4 KiB write buffer. It closes
		// the file once sent.
		ctx.SetBodyStream(f, int(size))
		return
	}
	ctx.SetBodyStream(readCloser{body, res.body}, int(size))
}

// readCloser reads from one reader and closes another (fasthttp closes a
// body stream that is an io.Closer once it is sent).
type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

// fastLogger sends fasthttp's messages (connection errors) to our log.
type fastLogger struct{ log *slog.Logger }

func (l fastLogger) Printf(format string, args ...any) {
	l.log.Warn("serve", "msg", fmt.Sprintf(format, args...))
}
