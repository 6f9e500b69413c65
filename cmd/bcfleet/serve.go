package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/fleet"
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
		},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runServe(c.Context, globals(c), serveOptions{DB: c.String("db"), KEK: c.String("kek"), Addr: c.String("addr"),
				TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"), OIDCIssuer: c.String("oidc-issuer"),
				OIDCClientID: c.String("oidc-client-id"), RolesClaim: c.String("roles-claim"), Args: c.Args().Slice()})
		},
	}
}

// serveOptions are bcfleet serve's flags.
type serveOptions struct {
	DB, KEK, Addr   string
	TLSCert, TLSKey string
	OIDCIssuer      string
	OIDCClientID    string
	RolesClaim      string
	Args            []string
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
		var people http.Handler // nil (not a nil *People) without an issuer
		if o.OIDCIssuer != "" {
			p, err := fleet.NewPeople(ctx, fleet.PeopleOptions{Issuer: o.OIDCIssuer, ClientID: o.OIDCClientID, RolesClaim: o.RolesClaim, Store: st, KEK: kek})
			if err != nil {
				return err
			}
			people = p
		}
		return fleet.Serve(ctx, s, m, fleet.ServeOptions{Addr: o.Addr, TLSCert: o.TLSCert, TLSKey: o.TLSKey, Log: log, People: people,
			Ready: func(url string) {
				people := "people's API off (no --oidc-issuer)"
				if o.OIDCIssuer != "" {
					people = "people's API at " + url + "/api/ (sign-on: " + o.OIDCIssuer + ")"
				}
				fmt.Fprintf(g.Stdout, "bcfleet %s serving devices at %s, metrics at %s/metrics, %s\n", version, url, url, people)
			}})
	})
}
