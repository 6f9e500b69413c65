package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/internal/netaddr"
)

// ChartJSVersion is the vendored chart library's version
// (static/vendor/chart.js/README.md).
const ChartJSVersion = "4.6.2"

//go:embed templates static
var assets embed.FS

// Options configure the dashboard.
type Options struct {
	// Issuer is the OpenID Connect issuer (https, or http on loopback);
	// ClientID this service's client there, ClientSecret its secret
	// ("" for a public client: PKCE alone).
	Issuer, ClientID, ClientSecret string
	// RolesClaim is the ID token claim with the roles (default "roles").
	RolesClaim string
	// PublicURL is where people reach the service (https://…): the
	// sign-in's redirect URL is PublicURL/auth/callback. Empty: the
	// request's own address, on loopback only.
	PublicURL string
	Store     fleet.Store
	KEK       fleet.KEK
	// MaxFailureRate is the rollout guard's limit the rollouts page
	// compares with (default 0.02, bcpublish's --max-failure-rate).
	MaxFailureRate float64
	// SessionLife bounds a session (default 8 hours).
	SessionLife time.Duration
	// RolloutsMaxAge is how long the rollouts page's numbers are shown
	// before they are read again from the store (default 30 s; in the
	// background, showing the older ones meanwhile); negative: read for
	// every request.
	RolloutsMaxAge time.Duration
	// HistoryEvery is how often each release's counts are recorded for
	// the rollouts page's chart over time (default an hour, and once at
	// start; negative: never, only the points other servers record).
	HistoryEvery time.Duration
	Now          func() time.Time
	Log          *slog.Logger
}

// Dashboard serves the web pages.
type Dashboard struct {
	o        Options
	provider *oidc.Provider
	scopes   []string
	verifier *oidc.IDTokenVerifier
	sealer   *sealer
	pages    map[string]*template.Template
	mux      *http.ServeMux
	static   http.Handler
	csp      string

	mu      sync.Mutex
	ended   map[string]time.Time // sessions signed out, until they expire
	swept   time.Time
	baseURL *url.URL // PublicURL parsed (nil: the request's own)

	rmu     sync.Mutex
	rsnap   *rolloutsData // the rollouts page's last numbers
	rflight chan struct{} // closed when the read under way ends
	rerr    error         // the last read's error
}

// ParsePublicURL checks --public-url: https://HOST[:PORT] (plain http
// only on loopback), no path, query or user.
func ParsePublicURL(s string) (*url.URL, error) {
	pu, err := url.Parse(s)
	if err != nil || pu.Host == "" || pu.User != nil || pu.RawQuery != "" || pu.Fragment != "" || (pu.Path != "" && pu.Path != "/") ||
		(pu.Scheme != "https" && !(pu.Scheme == "http" && netaddr.IsLoopback(pu.Hostname()))) {
		return nil, errs.Usagef("public-url", "--public-url %q: want the https://HOST[:PORT] people reach the service at (plain http only on loopback), with no path", s)
	}
	pu.Path = ""
	return pu, nil
}

// DefaultSessionLife is how long a session lasts at most;
// DefaultRolloutsMaxAge how old the rollouts page's numbers may be.
const (
	DefaultSessionLife    = 8 * time.Hour
	DefaultRolloutsMaxAge = 30 * time.Second
	// DefaultHistoryEvery is how often the rollouts' counts are recorded;
	// HistoryKeep how long they are kept, HistoryShown how far back the
	// chart over time goes.
	DefaultHistoryEvery = time.Hour
	HistoryKeep         = 90 * 24 * time.Hour
	HistoryShown        = 14 * 24 * time.Hour
)

// New discovers the issuer and builds the dashboard.
func New(ctx context.Context, o Options) (*Dashboard, error) {
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && netaddr.IsLoopback(u.Hostname()))) {
		return nil, errs.Usagef("oidc-issuer", "--oidc-issuer %q: want https://… (plain http only on loopback)", o.Issuer)
	}
	if o.ClientID == "" {
		return nil, errs.Usagef("oidc-client-id", "--oidc-client-id is required with --oidc-issuer")
	}
	if o.Store == nil || o.KEK == nil {
		return nil, errors.New("web.New: a store and a key-encryption key are required")
	}
	d := &Dashboard{o: o, ended: map[string]time.Time{}}
	if o.PublicURL != "" {
		if d.baseURL, err = ParsePublicURL(o.PublicURL); err != nil {
			return nil, err
		}
	}
	if d.o.RolesClaim == "" {
		d.o.RolesClaim = "roles"
	}
	if d.o.MaxFailureRate == 0 {
		d.o.MaxFailureRate = 0.02
	}
	if d.o.SessionLife <= 0 {
		d.o.SessionLife = DefaultSessionLife
	}
	if d.o.RolloutsMaxAge == 0 {
		d.o.RolloutsMaxAge = DefaultRolloutsMaxAge
	}
	if d.o.HistoryEvery == 0 {
		d.o.HistoryEvery = DefaultHistoryEvery
	}
	if d.o.Log == nil {
		d.o.Log = slog.New(slog.DiscardHandler)
	}
	p, err := oidc.NewProvider(ctx, o.Issuer)
	if err != nil {
		return nil, fmt.Errorf("--oidc-issuer %s: cannot read its discovery document (%w); is the issuer URL right and reachable?", o.Issuer, err)
	}
	d.provider = p
	// Scopes: openid, and of email, profile and groups those the issuer
	// lists (some refuse a scope they do not know); without a list,
	// openid email profile.
	var meta struct {
		Scopes []string `json:"scopes_supported"`
	}
	d.scopes = []string{oidc.ScopeOpenID}
	if err := p.Claims(&meta); err == nil && len(meta.Scopes) > 0 {
		for _, sc := range []string{"email", "profile", "groups"} {
			if slices.Contains(meta.Scopes, sc) {
				d.scopes = append(d.scopes, sc)
			}
		}
	} else {
		d.scopes = append(d.scopes, "email", "profile")
	}
	cfg := &oidc.Config{ClientID: o.ClientID}
	if o.Now != nil {
		cfg.Now = o.Now
	}
	d.verifier = p.Verifier(cfg)
	// The session key: a keyed hash under the KEK's lookup key, which
	// every server of the store shares and the database never holds in
	// plaintext; domain-separated from the email index (whose inputs
	// are addresses).
	mac := hmac.New(sha256.New, o.KEK.IndexKey())
	mac.Write([]byte("bcfleet-dashboard-session-v1\x00"))
	if d.sealer, err = newSealer(mac.Sum(nil)); err != nil {
		return nil, err
	}
	if err := d.parse(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	d.static = http.StripPrefix("/static/", http.FileServerFS(static))
	d.csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	d.routes()
	// The rollouts page's numbers are read at start, in the background,
	// so that its first visitor does not wait for them.
	if d.o.RolloutsMaxAge > 0 {
		done := make(chan struct{})
		d.rflight = done
		go d.refreshRollouts(done)
	}
	if d.o.HistoryEvery > 0 {
		go d.recordHistory(ctx)
	}
	return d, nil
}

func (d *Dashboard) now() time.Time {
	if d.o.Now != nil {
		return d.o.Now().UTC()
	}
	return time.Now().UTC()
}

// Paths the dashboard serves; the device API (/v1/), /metrics and the
// people's API (/api/) are beside them.
func (d *Dashboard) routes() {
	mux := http.NewServeMux()
	d.mux = mux
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/rollouts", http.StatusSeeOther)
	})
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		d.static.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /signin", d.signIn)
	mux.HandleFunc("GET /auth/callback", d.callback)
	mux.HandleFunc("POST /signout", d.signOut)
	mux.HandleFunc("GET /signedout", d.signedOut)
	mux.HandleFunc("GET /rollouts", d.page(fleet.RoleViewer, d.rollouts))
	mux.HandleFunc("GET /fleet", d.page(fleet.RoleViewer, d.fleet))
	mux.HandleFunc("GET /devices/{id}", d.page(fleet.RoleViewer, d.device))
	mux.HandleFunc("GET /devices/{id}/enrollee", d.page(fleet.RoleSupport, d.enrollee))
	mux.HandleFunc("POST /devices/{id}/revoke", d.page(fleet.RoleAdmin, d.revoke))
	mux.HandleFunc("GET /access", d.page(fleet.RoleAdmin, d.access))
}

// ServeHTTP serves the pages with the security headers every response
// carries.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", d.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	if d.secure(r) {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	d.mux.ServeHTTP(w, r)
}

// secure says whether people reach the service over https.
func (d *Dashboard) secure(r *http.Request) bool {
	if d.baseURL != nil {
		return d.baseURL.Scheme == "https"
	}
	return r.TLS != nil
}

// base is the service's URL as people reach it: PublicURL, or on
// loopback the request's own.
func (d *Dashboard) base(r *http.Request) (*url.URL, error) {
	if d.baseURL != nil {
		return d.baseURL, nil
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	if !netaddr.IsLoopback(host) {
		return nil, fmt.Errorf("the dashboard is reached at %q, not loopback: start bcfleet serve with --public-url https://%s", r.Host, r.Host)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: r.Host}, nil
}

func (d *Dashboard) oauth(base *url.URL) *oauth2.Config {
	return &oauth2.Config{ClientID: d.o.ClientID, ClientSecret: d.o.ClientSecret, Endpoint: d.provider.Endpoint(),
		RedirectURL: base.String() + "/auth/callback", Scopes: d.scopes}
}

// view is what every page's layout shows.
type view struct {
	Title   string
	Who     *session
	CSRF    string
	Nav     string
	Data    any
	Message string // for the error page
	Status  int
}

func (d *Dashboard) parse() error {
	funcs := template.FuncMap{
		"when":    when,
		"percent": func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
		"admin":   func(s *session) bool { return s != nil && s.Role >= fleet.RoleAdmin },
		"support": func(s *session) bool { return s != nil && s.Role >= fleet.RoleSupport },
		"join":    strings.Join,
		"dur": func(d time.Duration) string {
			s := d.String()
			if strings.HasSuffix(s, "m0s") {
				s = strings.TrimSuffix(s, "0s")
			}
			if strings.HasSuffix(s, "h0m") {
				s = strings.TrimSuffix(s, "0m")
			}
			return s
		},
		"hasPrefix": strings.HasPrefix,
		"add":       func(a, b int) int { return a + b },
		"sub":       func(a, b int) int { return a - b },
	}
	d.pages = map[string]*template.Template{}
	for _, name := range []string{"rollouts", "fleet", "device", "enrollee", "access", "error", "signedout"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard template %s: %w", name, err)
		}
		d.pages[name] = t
	}
	return nil
}

// when is a time as people read it: RFC 3339 in UTC in the markup, shown
// in the viewer's time zone by static/app.js.
func when(t any) template.HTML {
	var tt time.Time
	switch v := t.(type) {
	case time.Time:
		tt = v
	case *time.Time:
		if v != nil {
			tt = *v
		}
	}
	if tt.IsZero() {
		return "never"
	}
	tt = tt.UTC()
	return template.HTML(fmt.Sprintf(`<time datetime="%s" data-local>%s</time>`,
		template.HTMLEscapeString(tt.Format(time.RFC3339)), template.HTMLEscapeString(tt.Format("2006-01-02 15:04:05 UTC"))))
}

// render writes page name; a template error is a 500 without a half
// page.
func (d *Dashboard) render(w http.ResponseWriter, status int, name string, v view) {
	var b bytes.Buffer
	if err := d.pages[name].Execute(&b, v); err != nil {
		d.o.Log.Error("dashboard page", "page", name, "err", err)
		http.Error(w, "internal error; try again later", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// fail shows an error page: what went wrong and what to do.
func (d *Dashboard) fail(w http.ResponseWriter, who *session, status int, msg string) {
	title := http.StatusText(status)
	d.render(w, status, "error", view{Title: title, Who: who, CSRF: csrfOf(who), Message: msg, Status: status})
}

func csrfOf(s *session) string {
	if s == nil {
		return ""
	}
	return s.CSRF
}
