package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/web"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/errs"
)

var errVerification = errs.ErrVerification

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve enrollment, device reports and /metrics until interrupted",
		Flags: []cli.Flag{dbFlag(), kekFlag(),
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8443", Usage: "listen `HOST:PORT` (plain http only on loopback; port 0 picks a free one)", EnvVars: []string{"BCFLEET_ADDR"}},
			&cli.StringFlag{Name: "tls-cert", Usage: "TLS certificate `FILE` (PEM); TLS 1.2 or later", EnvVars: []string{"BCFLEET_TLS_CERT"}},
			&cli.StringFlag{Name: "tls-key", Usage: "TLS key `FILE` (PEM)", EnvVars: []string{"BCFLEET_TLS_KEY"}},
			&cli.StringFlag{Name: "oidc-issuer", Usage: "OpenID Connect issuer `URL` of the company's sign-on; turns on the people's API (/api/); without it only devices talk to the service", EnvVars: []string{"BCFLEET_OIDC_ISSUER"}},
			&cli.StringFlag{Name: "oidc-client-id", Usage: "this service's client `ID` at the issuer: the audience its ID tokens must name", EnvVars: []string{"BCFLEET_OIDC_CLIENT_ID"}},
			&cli.StringFlag{Name: "roles-claim", Value: "roles", Usage: "ID token claim `NAME` that lists the person's roles (viewer, support, admin; also as bcfleet-viewer, …)", EnvVars: []string{"BCFLEET_ROLES_CLAIM"}},
			&cli.StringFlag{Name: "oidc-client-secret-file", Usage: "`FILE` holding the client secret the issuer gave this service, for the dashboard's sign-in (without it: a public client, PKCE alone)", EnvVars: []string{"BCFLEET_OIDC_CLIENT_SECRET_FILE"}},
			&cli.StringFlag{Name: "public-url", Usage: "the https://HOST[:PORT] `URL` people reach the dashboard at; its sign-in returns to URL/auth/callback (default: the address itself, on loopback only)", EnvVars: []string{"BCFLEET_PUBLIC_URL"}},
			&cli.DurationFlag{Name: "rollouts-max-age", Value: web.DefaultRolloutsMaxAge, Usage: "how old the dashboard's rollout numbers may be shown before they are counted again (`DURATION`; 0: counted for every request)", EnvVars: []string{"BCFLEET_ROLLOUTS_MAX_AGE"}},
		},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runServe(c.Context, globals(c), serveOptions{DB: c.String("db"), KEK: c.String("kek"), Addr: c.String("addr"),
				TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"), OIDCIssuer: c.String("oidc-issuer"),
				OIDCClientID: c.String("oidc-client-id"), RolesClaim: c.String("roles-claim"), OIDCClientSecretFile: c.String("oidc-client-secret-file"),
				PublicURL: c.String("public-url"), RolloutsMaxAge: c.Duration("rollouts-max-age"), Args: c.Args().Slice()})
		},
	}
}

// readClientSecret reads the OIDC client secret from its file ("" for
// none): one line, and only the owner may read the file.
func readClientSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", cliutil.Usagef("oidc-client-secret-file", "--oidc-client-secret-file %s: %v", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", cliutil.Usagef("oidc-client-secret-file", "--oidc-client-secret-file %s is readable by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", cliutil.Usagef("oidc-client-secret-file", "--oidc-client-secret-file %s: %v", path, err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" || len(secret) > 4096 || strings.ContainsAny(secret, "\r\n") {
		return "", cliutil.Usagef("oidc-client-secret-file", "--oidc-client-secret-file %s: want the client secret alone on one line", path)
	}
	return secret, nil
}

// serveOptions are bcfleet serve's flags.
type serveOptions struct {
	DB, KEK, Addr   string
	TLSCert, TLSKey string
	OIDCIssuer      string
	OIDCClientID    string
	RolesClaim      string
	// OIDCClientSecretFile and PublicURL are the dashboard's sign-in.
	OIDCClientSecretFile string
	PublicURL            string
	// RolloutsMaxAge: the dashboard's rollout numbers (0: counted for
	// every request).
	RolloutsMaxAge time.Duration
	Args           []string
}

func runServe(ctx context.Context, g *globalOptions, o serveOptions) error {
	if err := cliutil.Required([]string{"db", "kek"}, o.DB, o.KEK); err != nil {
		return err
	}
	if err := cliutil.NoArgs(o.Args); err != nil {
		return err
	}
	if o.OIDCIssuer == "" && o.OIDCClientID != "" {
		return cliutil.Usagef("oidc-issuer", "--oidc-client-id needs --oidc-issuer")
	}
	if o.OIDCIssuer == "" && (o.OIDCClientSecretFile != "" || o.PublicURL != "") {
		return cliutil.Usagef("oidc-issuer", "--oidc-client-secret-file and --public-url are the dashboard's sign-in: they need --oidc-issuer")
	}
	if o.RolloutsMaxAge < 0 {
		return cliutil.Usagef("rollouts-max-age", "--rollouts-max-age %s: want a duration of 0 or more", o.RolloutsMaxAge)
	}
	if o.PublicURL != "" {
		if _, err := web.ParsePublicURL(o.PublicURL); err != nil {
			return err
		}
	}
	secret, err := readClientSecret(o.OIDCClientSecretFile)
	if err != nil {
		return err
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		// After the store: an AWS KMS key keeps its wrapped email-lookup
		// key there.
		kek, err := fleet.OpenKEKWithStore(ctx, o.KEK, st)
		if err != nil {
			return err
		}
		log := g.logger()
		s := &fleet.Server{Store: st, KEK: kek, Log: log}
		m := fleet.NewMetrics(func() (int, error) { return fleet.OnlineCount(ctx, st) })
		var people, dash http.Handler // nil (not a nil *People) without an issuer
		if o.OIDCIssuer != "" {
			p, err := fleet.NewPeople(ctx, fleet.PeopleOptions{Issuer: o.OIDCIssuer, ClientID: o.OIDCClientID, RolesClaim: o.RolesClaim, Store: st, KEK: kek})
			if err != nil {
				return err
			}
			people = p
			w, err := web.New(ctx, web.Options{Issuer: o.OIDCIssuer, ClientID: o.OIDCClientID, ClientSecret: secret, RolesClaim: o.RolesClaim,
				PublicURL: o.PublicURL, Store: st, KEK: kek, Log: log, RolloutsMaxAge: rolloutsMaxAge(o.RolloutsMaxAge)})
			if err != nil {
				return err
			}
			dash = w
		}
		return fleet.Serve(ctx, s, m, fleet.ServeOptions{Addr: o.Addr, TLSCert: o.TLSCert, TLSKey: o.TLSKey, Log: log, People: people, Web: dash,
			Ready: func(url string) {
				people := "people's API off (no --oidc-issuer)"
				if o.OIDCIssuer != "" {
					dashURL := url
					if o.PublicURL != "" {
						dashURL = strings.TrimSuffix(o.PublicURL, "/")
					}
					people = "people's API at " + url + "/api/ (sign-on: " + o.OIDCIssuer + "), dashboard at " + dashURL + "/"
				}
				fmt.Fprintf(g.Stdout, "bcfleet %s serving devices at %s, metrics at %s/metrics, %s\n", version, url, url, people)
			}})
	})
}

// rolloutsMaxAge is --rollouts-max-age as web.Options takes it (0 there
// is the default; negative, every request).
func rolloutsMaxAge(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
