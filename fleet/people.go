package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/internal/netaddr"
)

// The people's API: support staff and release engineers sign in through
// the company's single sign-on (any OpenID Connect issuer) and send the ID
// token it gave them as "Authorization: Bearer …". The token must be
// signed by the issuer, for this service (its audience is the client ID),
// and not expired. Roles come from one claim (--roles-claim): viewer sees
// counts and versions, never personal data; support also sees a device's
// enrollee; admin also revokes devices and makes tokens. Each role
// includes the ones before it.

// Role is what a person may do.
type Role int

// Roles, each including the ones before.
const (
	RoleNone Role = iota
	RoleViewer
	RoleSupport
	RoleAdmin
)

var roleNames = map[string]Role{"viewer": RoleViewer, "support": RoleSupport, "admin": RoleAdmin}

func (r Role) String() string {
	for n, v := range roleNames {
		if v == r {
			return n
		}
	}
	return "none"
}

// PeopleOptions configure the people's API.
type PeopleOptions struct {
	Issuer     string // https, or http on loopback
	ClientID   string // the audience its tokens must name
	RolesClaim string // default "roles"
	Store      Store
	KEK        KEK
	Now        func() time.Time
	// Rejected, if set, is told each refused request's reason (metrics):
	// "sso-missing", "sso-invalid", "sso-expired", "role".
	Rejected func(reason string)
}

// People serves /api/ for people.
type People struct {
	o        PeopleOptions
	verifier *oidc.IDTokenVerifier
	mux      *http.ServeMux
}

// NewPeople discovers the issuer (its keys are fetched as needed).
func NewPeople(ctx context.Context, o PeopleOptions) (*People, error) {
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && netaddr.IsLoopback(u.Hostname()))) {
		return nil, errs.Usagef("oidc-issuer", "--oidc-issuer %q: want https://… (plain http only on loopback)", o.Issuer)
	}
	if o.ClientID == "" {
		return nil, errs.Usagef("oidc-client-id", "--oidc-client-id is required with --oidc-issuer")
	}
	if o.RolesClaim == "" {
		o.RolesClaim = "roles"
	}
	p, err := oidc.NewProvider(ctx, o.Issuer)
	if err != nil {
		return nil, fmt.Errorf("--oidc-issuer %s: cannot read its discovery document (%w); is the issuer URL right and reachable?", o.Issuer, err)
	}
	cfg := &oidc.Config{ClientID: o.ClientID}
	if o.Now != nil {
		cfg.Now = o.Now
	}
	pp := &People{o: o, verifier: p.Verifier(cfg)}
	pp.routes()
	return pp, nil
}

func (p *People) now() time.Time {
	if p.o.Now != nil {
		return p.o.Now().UTC()
	}
	return time.Now().UTC()
}

// Person is who signed in.
type Person struct {
	Subject string `json:"subject"`
	Email   string `json:"email,omitempty"`
	Role    string `json:"role"`
	role    Role
}

// actor names the person in the access log.
func (who *Person) actor() string { return "oidc:" + who.Subject }

// authenticate checks the bearer token and reads the role.
func (p *People) authenticate(r *http.Request) (*Person, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return nil, rejectedError("sso-missing", http.StatusUnauthorized, "sign in through single sign-on and send its ID token as Authorization: Bearer TOKEN")
	}
	tok, err := p.verifier.Verify(r.Context(), strings.TrimSpace(raw))
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return nil, rejectedError("sso-expired", http.StatusUnauthorized, "the session expired at %s: sign in again", expired.Expiry.UTC().Format(time.RFC3339))
		}
		return nil, rejectedError("sso-invalid", http.StatusUnauthorized, "the ID token is not valid for this service (%v)", err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, apiError(http.StatusUnauthorized, "the ID token's claims do not parse")
	}
	who := &Person{Subject: tok.Subject}
	if e, ok := claims["email"].(string); ok {
		who.Email = e
	}
	who.role = RoleFromClaims(claims, p.o.RolesClaim)
	who.Role = who.role.String()
	return who, nil
}

// RoleFromClaims is the highest role an ID token's claims give in claim
// (a list of names, or one string of names separated by spaces: viewer,
// support, admin, or the same with a "bcfleet-" prefix); RoleNone if
// none.
func RoleFromClaims(claims map[string]any, claim string) Role {
	var values []string
	switch v := claims[claim].(type) {
	case string:
		values = strings.Fields(v)
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				values = append(values, s)
			}
		}
	}
	role := RoleNone
	for _, v := range values {
		if r := roleNames[strings.TrimPrefix(v, "bcfleet-")]; r > role {
			role = r
		}
	}
	return role
}

type apiErr struct {
	status int
	msg    string
	reason string // a refusal counted in metrics
}

func (e *apiErr) Error() string { return e.msg }

func apiError(status int, format string, args ...any) error {
	return &apiErr{status: status, msg: fmt.Sprintf(format, args...)}
}

func rejectedError(reason string, status int, format string, args ...any) error {
	return &apiErr{status: status, msg: fmt.Sprintf(format, args...), reason: reason}
}

// ServeHTTP routes /api/.
func (p *People) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mux.ServeHTTP(w, r)
}

func (p *People) routes() {
	mux := http.NewServeMux()
	p.mux = mux
	mux.HandleFunc("GET /api/me", p.handle(RoleNone, func(r *http.Request, who *Person) (any, error) { return who, nil }))
	mux.HandleFunc("GET /api/devices", p.handle(RoleViewer, p.listDevices))
	mux.HandleFunc("GET /api/devices/{id}", p.handle(RoleSupport, func(r *http.Request, who *Person) (any, error) {
		return ShowDevice(r.Context(), p.o.Store, p.o.KEK, who.actor(), r.PathValue("id"), p.now())
	}))
	mux.HandleFunc("POST /api/devices/{id}/revoke", p.handle(RoleAdmin, func(r *http.Request, who *Person) (any, error) {
		id := r.PathValue("id")
		if err := RevokeDevice(r.Context(), p.o.Store, who.actor(), id, p.now()); err != nil {
			return nil, err
		}
		return map[string]string{"revoked": id}, nil
	}))
	mux.HandleFunc("POST /api/tokens", p.handle(RoleAdmin, p.createToken))
	mux.HandleFunc("GET /api/tokens", p.handle(RoleAdmin, func(r *http.Request, who *Person) (any, error) {
		ts, err := p.o.Store.Tokens(r.Context())
		if ts == nil {
			ts = []Token{}
		}
		return ts, err
	}))
	mux.HandleFunc("POST /api/tokens/{id}/revoke", p.handle(RoleAdmin, func(r *http.Request, who *Person) (any, error) {
		id := r.PathValue("id")
		if err := RevokeToken(r.Context(), p.o.Store, who.actor(), id, p.now()); err != nil {
			return nil, err
		}
		return map[string]string{"revoked": id}, nil
	}))
	mux.HandleFunc("GET /api/rollouts/{component}/{version}", p.handle(RoleViewer, func(r *http.Request, who *Person) (any, error) {
		return CountRollout(r.Context(), p.o.Store, r.PathValue("component"), r.PathValue("version"), p.now())
	}))
}

// handle checks the person and the role before fn runs.
func (p *People) handle(need Role, fn func(*http.Request, *Person) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		who, err := p.authenticate(r)
		if err == nil && who.role < need {
			err = rejectedError("role", http.StatusForbidden, "this needs the %s role; you have %s (ask for it in the %s claim of your sign-on)", need, who.role, p.o.RolesClaim)
		}
		var ae *apiErr
		if errors.As(err, &ae) && ae.reason != "" && p.o.Rejected != nil {
			p.o.Rejected(ae.reason)
		}
		var out any
		if err == nil {
			out, err = fn(r, who)
		}
		if err != nil {
			status := http.StatusInternalServerError
			switch {
			case errors.As(err, &ae):
				status = ae.status
			case errors.Is(err, errs.ErrUsage):
				status = http.StatusBadRequest
				if strings.HasPrefix(err.Error(), "no ") {
					status = http.StatusNotFound
				}
			}
			msg := err.Error()
			if status == http.StatusInternalServerError {
				msg = "internal error; try again later"
			}
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": msg})
			return
		}
		json.NewEncoder(w).Encode(out)
	}
}

func (p *People) listDevices(r *http.Request, _ *Person) (any, error) {
	q := r.URL.Query()
	f := ListFilter{DeviceFilter: DeviceFilter{Site: q.Get("site"), Component: q.Get("component"), Version: q.Get("version"), State: q.Get("state")},
		Offline: q.Get("offline") == "true"}
	return ListDevices(r.Context(), p.o.Store, f, p.now())
}

func (p *People) createToken(r *http.Request, who *Person) (any, error) {
	var req struct {
		Site    string `json:"site"`
		Expires string `json:"expires"`
		Uses    int    `json:"uses"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, apiError(http.StatusBadRequest, "want {\"site\": …, \"expires\": \"7d\", \"uses\": 1}: %v", err)
	}
	if req.Expires == "" {
		req.Expires = "7d"
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	life, err := ParseLife(req.Expires)
	if err != nil {
		return nil, err
	}
	secret, tok, err := CreateToken(r.Context(), p.o.Store, who.actor(), req.Site, life, req.Uses, p.now())
	if err != nil {
		return nil, err
	}
	return struct {
		*Token
		Secret string `json:"token"`
	}{tok, secret}, nil
}
