package main

import (
	"context"
	"fmt"

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
		},
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runServe(c.Context, globals(c), serveOptions{DB: c.String("db"), KEK: c.String("kek"), Addr: c.String("addr"),
				TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"), Args: c.Args().Slice()})
		},
	}
}

// serveOptions are bcfleet serve's flags.
type serveOptions struct {
	DB, KEK, Addr   string
	TLSCert, TLSKey string
	Args            []string
}

func runServe(ctx context.Context, g *globalOptions, o serveOptions) error {
	if err := cliutil.Required([]string{"db", "kek"}, o.DB, o.KEK); err != nil {
		return err
	}
	if err := cliutil.NoArgs(o.Args); err != nil {
		return err
	}
	kek, err := fleet.OpenKEK(o.KEK)
	if err != nil {
		return err
	}
	return withStore(ctx, o.DB, func(st fleet.Store) error {
		log := g.logger()
		s := &fleet.Server{Store: st, KEK: kek, Log: log}
		m := fleet.NewMetrics(func() (int, error) { return fleet.OnlineCount(ctx, st) })
		return fleet.Serve(ctx, s, m, fleet.ServeOptions{Addr: o.Addr, TLSCert: o.TLSCert, TLSKey: o.TLSKey, Log: log,
			Ready: func(url string) {
				fmt.Fprintf(g.Stdout, "bcfleet %s serving devices at %s (metrics at %s/metrics)\n", version, url, url)
			}})
	})
}
