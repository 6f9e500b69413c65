// Package web is the fleet service's dashboard for release engineers and
// support staff, served by `bcfleet serve` beside the device API: rollouts
// (how far each release went and how it fails), the fleet (devices,
// searched, filtered and paged in the store), one device (its components,
// features, log heads and findings), its enrollee (support only, recorded
// in the access log first) and the access log (admin only).
//
// Who may see what is fleet.People's role model: people sign in through
// the company's OpenID Connect issuer (authorization-code flow with PKCE,
// a nonce and a state bound to the browser), and their role comes from one
// claim of the ID token. The session is a cookie sealed with AES-256-GCM
// under a key derived from the service's key-encryption key (so every
// server of one store opens it, and the database never holds it): Secure,
// HttpOnly, SameSite=Strict, __Host- prefixed, eight hours at most.
//
// What it trusts: the issuer's signature on the ID token, and nothing the
// browser sends but the sealed cookie. Every state-changing request needs
// the session's CSRF token and a same-origin Origin. Pages are
// server-rendered (html/template); the only scripts are the two embedded
// files under static/ (Content-Security-Policy script-src 'self', no
// inline script or style).
//
// What it must never do: show personal data to anyone below the support
// role, show it before the read is in the access log, or change anything
// on a GET.
package web
