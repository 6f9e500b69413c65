package publisher

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beckmanconnect/bcupdate/repo"
)

// metaCacheMax bounds the metadata kept in memory by the handler.
const (
	metaCacheMax     = 64 << 10 // per file
	metaCacheEntries = 4096
)

type cached struct {
	data []byte
	at   time.Time
	// version of timestamp.json in a store that can tell it cheaply
	mod  time.Time
	size int64
}

// stater is a store that can tell an object's modification time and size
// without reading it (DirStore): timestamp.json is then always fresh.
type stater interface {
	stat(name string) (time.Time, int64, error)
}

func (d *DirStore) stat(name string) (time.Time, int64, error) {
	p, err := d.path(name)
	if err != nil {
		return time.Time{}, 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return time.Time{}, 0, err
	}
	return fi.ModTime(), fi.Size(), nil
}

// fresh says whether a cached metadata file may be served as is.
func fresh(s Store, p string, c cached) bool {
	if p != "/metadata/timestamp.json" {
		return true // versioned metadata never changes
	}
	if st, ok := s.(stater); ok {
		mod, size, err := st.stat(strings.TrimPrefix(p, "/"))
		return err == nil && mod.Equal(c.mod) && size == c.size
	}
	return false // no cheap way to know: read it every time
}

// Handler serves a store's metadata/ and targets/ over HTTP GET and HEAD,
// with real 404s and no directory listings. Small metadata is served from
// memory: versioned files never change, and timestamp.json is served from
// memory only while the store says (by modification time and size) that
// it has not changed.
func Handler(s Store, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var cache sync.Map
	var entries atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := req.URL.Path
		// Fast path: metadata already in memory (it passed the checks below
		// when it was first served).
		if v, ok := cache.Load(p); ok {
			if c := v.(cached); fresh(s, p, c) {
				writeMeta(w, req, p, c.data)
				return
			}
		}
		var name string
		switch {
		case strings.HasPrefix(p, "/metadata/"):
			name = strings.TrimPrefix(p, "/metadata/")
		case strings.HasPrefix(p, "/targets/"):
			name = strings.TrimPrefix(p, "/targets/")
		default:
			http.NotFound(w, req)
			return
		}
		if repo.ValidateTargetPath(name) != nil {
			http.NotFound(w, req)
			return
		}
		if strings.HasPrefix(p, "/metadata/") {
			c := cached{at: time.Now()}
			if st, ok := s.(stater); ok && p == "/metadata/timestamp.json" {
				c.mod, c.size, _ = st.stat(strings.TrimPrefix(p, "/"))
			}
			data, _, err := s.Read(req.Context(), strings.TrimPrefix(p, "/"), metaCacheMax)
			if err == nil && c.size != 0 && int64(len(data)) != c.size {
				c.size = -1 // replaced while reading: do not trust the stat
			}
			c.data = data
			if err == nil {
				if _, had := cache.Swap(p, c); !had && entries.Add(1) > metaCacheEntries {
					cache.Clear()
					entries.Store(0)
				}
				writeMeta(w, req, p, data)
				return
			}
			if errors.Is(err, fs.ErrNotExist) {
				http.NotFound(w, req)
				return
			}
			// Too large for the cache: stream it below.
		}
		rc, err := s.Get(req.Context(), strings.TrimPrefix(p, "/"))
		if errors.Is(err, fs.ErrNotExist) {
			http.NotFound(w, req)
			return
		}
		if err != nil {
			log.Error("serve", "path", p, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		defer rc.Close()
		h := w.Header()
		if strings.HasSuffix(name, ".json") {
			h.Set("Content-Type", "application/json")
		} else {
			h.Set("Content-Type", "application/octet-stream")
		}
		if p == "/metadata/timestamp.json" {
			h.Set("Cache-Control", "no-cache")
		} else {
			// Versioned metadata and hash-named targets never change.
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		if rs, ok := rc.(io.ReadSeeker); ok {
			http.ServeContent(w, req, "", time.Time{}, rs)
			return
		}
		if req.Method == http.MethodGet {
			io.Copy(w, rc)
		}
	})
}

var (
	jsonType  = []string{"application/json"}
	noCache   = []string{"no-cache"}
	immutable = []string{"public, max-age=31536000, immutable"}
)

func writeMeta(w http.ResponseWriter, req *http.Request, p string, data []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	if p == "/metadata/timestamp.json" {
		h["Cache-Control"] = noCache
	} else {
		h["Cache-Control"] = immutable
	}
	h["Content-Length"] = []string{strconv.Itoa(len(data))}
	if req.Method == http.MethodGet {
		w.Write(data)
	}
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

// Serve serves a store until ctx is cancelled, then shuts down gracefully.
func Serve(ctx context.Context, s Store, o ServeOptions) error {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8080"
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", o.Addr, err)
	}
	srv := &http.Server{
		Handler:           Handler(s, o.Log),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	scheme := "http"
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
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
		return srv.Shutdown(sctx)
	}
}
