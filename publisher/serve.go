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
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/repo"
)

// Handler serves a store's metadata/ and targets/ over HTTP GET and HEAD,
// with real 404s and no directory listings.
func Handler(s Store, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := req.URL.Path
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
