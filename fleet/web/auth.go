package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/beckmanconnect/bcupdate/fleet"
)

// Cookies. The __Host- prefix makes the browser refuse them unless they
// are Secure, for this host only (no Domain) and for every path.
const (
	sessionCookie = "__Host-bcfleet-session"
	signInCookie  = "__Host-bcfleet-signin"
	// signInLife bounds a sign-in: from leaving for the issuer to
	// coming back.
	signInLife = 10 * time.Minute
	// maxCookie bounds a cookie value read back.
	maxCookie = 4096
)

// session is a signed-in person, sealed in the session cookie.
type session struct {
	ID      string     `json:"id"` // random: a signed-out session is refused by it
	Subject string     `json:"sub"`
	Email   string     `json:"email,omitempty"`
	Name    string     `json:"name,omitempty"`
	Role    fleet.Role `json:"role"`
	Expires int64      `json:"exp"`  // Unix seconds
	CSRF    string     `json:"csrf"` // the token every form carries
}

// RoleName is the role in the CLI's words.
func (s *session) RoleName() string { return s.Role.String() }

// Display is how the page names the person.
func (s *session) Display() string {
	switch {
	case s.Name != "":
		return s.Name
	case s.Email != "":
		return s.Email
	}
	return s.Subject
}

// actor names the person in the access log, as the people's API does.
func (s *session) actor() string { return "oidc:" + s.Subject }

// signIn is the state of a sign-in under way, sealed in its own cookie:
// the OAuth state and OIDC nonce it must come back with, the PKCE
// verifier, and where to go after.
type signIn struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	Next     string `json:"next"`
	Expires  int64  `json:"exp"`
}

// sealer seals cookies with AES-256-GCM; the cookie's name is the
// additional data, so one cookie never opens as another.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: a}, nil
}

func (s *sealer) seal(name string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(name))), nil
}

func (s *sealer) open(name, value string, v any) error {
	if len(value) > maxCookie {
		return errors.New("cookie too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return errors.New("cookie malformed")
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(name))
	if err != nil {
		return errors.New("cookie not sealed by this service")
	}
	return json.Unmarshal(plain, v)
}

func random() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (d *Dashboard) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		Secure: true, HttpOnly: true, SameSite: sameSite})
}

func (d *Dashboard) clearCookie(w http.ResponseWriter, name string, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: sameSite})
}

// current is the signed-in person, or nil.
func (d *Dashboard) current(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	var s session
	if err := d.sealer.open(sessionCookie, c.Value, &s); err != nil {
		return nil
	}
	now := d.now()
	if now.Unix() >= s.Expires || s.ID == "" || s.CSRF == "" {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ended := d.ended[s.ID]; ended {
		return nil
	}
	return &s
}

// safeNext is a local path to go to after signing in ("/rollouts" for
// anything else: never another site).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/rollouts"
	}
	return next
}

// signIn starts the authorization-code flow with PKCE (S256).
func (d *Dashboard) signIn(w http.ResponseWriter, r *http.Request) {
	base, err := d.base(r)
	if err != nil {
		d.fail(w, nil, http.StatusBadRequest, err.Error())
		return
	}
	si := signIn{State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier(), Next: safeNext(r.URL.Query().Get("next")),
		Expires: d.now().Add(signInLife).Unix()}
	v, err := d.sealer.seal(signInCookie, si)
	if err != nil {
		d.fail(w, nil, http.StatusInternalServerError, "cannot start the sign-in; try again")
		return
	}
	// Lax: the browser must send it back on the issuer's redirect, a
	// top-level navigation from another site.
	d.setCookie(w, signInCookie, v, signInLife, http.SameSiteLaxMode)
	http.Redirect(w, r, d.oauth(base).AuthCodeURL(si.State, oidc.Nonce(si.Nonce), oauth2.S256ChallengeOption(si.Verifier)), http.StatusFound)
}

// callback finishes the sign-in: the state must match the browser's
// sign-in cookie, the code is exchanged with the PKCE verifier, and the
// ID token must be the issuer's, for this client, unexpired, with the
// nonce of this sign-in.
func (d *Dashboard) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var si signIn
	c, err := r.Cookie(signInCookie)
	if err != nil || d.sealer.open(signInCookie, c.Value, &si) != nil || d.now().Unix() >= si.Expires {
		d.fail(w, nil, http.StatusBadRequest, "This sign-in was not started here or took longer than 10 minutes. Sign in again.")
		return
	}
	d.clearCookie(w, signInCookie, http.SameSiteLaxMode)
	if e := q.Get("error"); e != "" {
		d.fail(w, nil, http.StatusUnauthorized, "The sign-on service refused the sign-in ("+e+": "+q.Get("error_description")+"). Sign in again or ask your administrator.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(si.State)) != 1 {
		d.fail(w, nil, http.StatusBadRequest, "The sign-in's state does not match the one this browser started (a forged or replayed sign-in?). Sign in again.")
		return
	}
	base, err := d.base(r)
	if err != nil {
		d.fail(w, nil, http.StatusBadRequest, err.Error())
		return
	}
	tok, err := d.oauth(base).Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(si.Verifier))
	if err != nil {
		d.o.Log.Warn("dashboard sign-in: code exchange", "err", err)
		d.fail(w, nil, http.StatusBadGateway, "The sign-on service did not take the sign-in's code. Sign in again.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		d.fail(w, nil, http.StatusBadGateway, "The sign-on service sent no ID token. Ask your administrator to allow the openid scope for this client.")
		return
	}
	idt, err := d.verifier.Verify(r.Context(), raw)
	if err != nil {
		d.fail(w, nil, http.StatusUnauthorized, "The ID token is not valid for this service. Sign in again.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(si.Nonce)) != 1 {
		d.fail(w, nil, http.StatusUnauthorized, "The ID token was not issued for this sign-in (its nonce differs). Sign in again.")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		d.fail(w, nil, http.StatusUnauthorized, "The ID token's claims do not parse.")
		return
	}
	s := session{ID: random(), Subject: idt.Subject, Role: fleet.RoleFromClaims(claims, d.o.RolesClaim),
		Expires: d.now().Add(d.o.SessionLife).Unix(), CSRF: random()}
	s.Email, _ = claims["email"].(string)
	s.Name, _ = claims["name"].(string)
	v, err := d.sealer.seal(sessionCookie, s)
	if err != nil {
		d.fail(w, nil, http.StatusInternalServerError, "cannot start the session; try again")
		return
	}
	d.setCookie(w, sessionCookie, v, d.o.SessionLife, http.SameSiteStrictMode)
	d.o.Log.Info("dashboard sign-in", "subject", s.Subject, "role", s.Role.String())
	// A Strict cookie set on the issuer's redirect is not sent on a
	// redirect that continues it: continue from this page instead.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	next := template.HTMLEscapeString(si.Next)
	w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=` + next +
		`"><title>Signed in</title></head><body><p>Signed in. <a href="` + next + `">Continue</a>.</p></body></html>`))
}

// signOut ends the session: the cookie is cleared, and the session is
// refused from now on even if a copy of the cookie is sent.
func (d *Dashboard) signOut(w http.ResponseWriter, r *http.Request) {
	s := d.current(r)
	if s != nil {
		if why := d.checkCSRF(r, s); why != "" {
			d.fail(w, s, http.StatusForbidden, why)
			return
		}
		d.mu.Lock()
		now := d.now()
		if now.Sub(d.swept) > time.Minute {
			for id, exp := range d.ended {
				if now.After(exp) {
					delete(d.ended, id)
				}
			}
			d.swept = now
		}
		d.ended[s.ID] = time.Unix(s.Expires, 0)
		d.mu.Unlock()
		d.o.Log.Info("dashboard sign-out", "subject", s.Subject)
	}
	d.clearCookie(w, sessionCookie, http.SameSiteStrictMode)
	http.Redirect(w, r, "/signedout", http.StatusSeeOther)
}

func (d *Dashboard) signedOut(w http.ResponseWriter, r *http.Request) {
	d.render(w, http.StatusOK, "signedout", view{Title: "Signed out"})
}

// checkCSRF: a state-changing request must carry the session's CSRF
// token, and come from this origin when the browser says where it came
// from. It returns why not, for the page ("" when it does).
func (d *Dashboard) checkCSRF(r *http.Request, s *session) string {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return "This request came from another site (" + site + "); it was refused. Use the dashboard's own buttons."
	}
	if o := r.Header.Get("Origin"); o != "" {
		base, err := d.base(r)
		if err != nil || o != base.Scheme+"://"+base.Host {
			return "This request came from another origin (" + o + "); it was refused. Use the dashboard's own buttons."
		}
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 16<<10)
	tok := r.PostFormValue("csrf")
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.CSRF)) != 1 {
		return "This form's security token is missing or stale (the page was open across a sign-in?). Reload the page and try again."
	}
	return ""
}

// page checks the session and the role before fn runs: no session signs
// in (then comes back); too low a role is refused, saying which is
// needed. A POST also needs the CSRF token.
func (d *Dashboard) page(need fleet.Role, fn func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := d.current(r)
		if s == nil {
			if r.Method != http.MethodGet {
				d.fail(w, nil, http.StatusForbidden, "You are not signed in (or your session ended). Sign in and try again.")
				return
			}
			http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		if s.Role < need {
			d.fail(w, s, http.StatusForbidden, "This page needs the "+need.String()+" role; you have "+s.Role.String()+
				" (ask for it in the "+d.o.RolesClaim+" claim of your sign-on).")
			return
		}
		if r.Method != http.MethodGet {
			if why := d.checkCSRF(r, s); why != "" {
				d.fail(w, s, http.StatusForbidden, why)
				return
			}
		}
		fn(w, r, s)
	}
}
