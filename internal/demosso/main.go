// Command demosso is make demo's single sign-on: a real OpenID Connect
// provider on loopback (github.com/oauth2-proxy/mockoidc, the one the
// tests use), with a page that lets the person at the demo choose to sign
// in as a viewer, a support associate or an admin. It has no passwords:
// it is for the demo on one's own machine only, and listens only on
// loopback.
//
//	demosso -addr 127.0.0.1:0 -secret-file FILE
//
// It prints "issuer URL client-id ID" on one line once it listens, writes
// the client secret to FILE (0600), and runs until interrupted.
package main

import (
	"flag"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/beckmanconnect/bcupdate/internal/netaddr"
)

// users are the demo's people, by role (the groups claim).
var users = map[string]*mockoidc.MockUser{
	"viewer":  {Subject: "demo-viewer", Email: "release.engineer@vendor.example", EmailVerified: true, Groups: []string{"viewer"}},
	"support": {Subject: "demo-support", Email: "support.associate@vendor.example", EmailVerified: true, Groups: []string{"support"}},
	"admin":   {Subject: "demo-admin", Email: "fleet.admin@vendor.example", EmailVerified: true, Groups: []string{"admin"}},
}

var choose = template.Must(template.New("choose").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo sign-in</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36em; margin: 3em auto">
<h1>Demo sign-in</h1>
<p>This is make demo's stand-in for your company's single sign-on. Sign in as:</p>
<ul>
<li><a href="{{.viewer}}">a release engineer (viewer)</a>: rollouts, the fleet, devices; no personal data</li>
<li><a href="{{.support}}">a support associate (support)</a>: also who enrolled a device (recorded in the access log)</li>
<li><a href="{{.admin}}">a fleet admin (admin)</a>: also revoke devices and read the access log</li>
</ul>
</body></html>`))

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen `HOST:PORT` (loopback only)")
	secretFile := flag.String("secret-file", "", "write the client secret to `FILE` (0600)")
	flag.Parse()
	if err := run(*addr, *secretFile); err != nil {
		fmt.Fprintln(os.Stderr, "demosso:", err)
		os.Exit(1)
	}
}

func run(addr, secretFile string) error {
	if secretFile == "" {
		return fmt.Errorf("-secret-file is required")
	}
	m, err := start(addr)
	if err != nil {
		return err
	}
	if err := os.WriteFile(secretFile, []byte(m.ClientSecret+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("issuer %s client-id %s\n", m.Issuer(), m.ClientID)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return m.Shutdown()
}

// start runs the issuer on addr (loopback only).
func start(addr string) (*mockoidc.MockOIDC, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !netaddr.IsLoopback(host) {
		return nil, fmt.Errorf("-addr %s: want a loopback HOST:PORT (this sign-in has no passwords)", addr)
	}
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		return nil, err
	}
	m.CodeChallengeMethodsSupported = []string{"S256"}
	// The authorization endpoint first asks who to be; the choice comes
	// back as demo_user and is queued for mockoidc, which signs that
	// user in.
	err = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != mockoidc.AuthorizationEndpoint {
				next.ServeHTTP(w, r)
				return
			}
			if u, ok := users[r.URL.Query().Get("demo_user")]; ok {
				m.QueueUser(u)
				next.ServeHTTP(w, r)
				return
			}
			links := map[string]string{}
			for role := range users {
				q := r.URL.Query()
				q.Set("demo_user", role)
				links[role] = r.URL.Path + "?" + q.Encode()
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			choose.Execute(w, links)
		})
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := m.Start(ln, nil); err != nil {
		return nil, err
	}
	return m, nil
}
