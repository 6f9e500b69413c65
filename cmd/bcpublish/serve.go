package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the repository's metadata/ and targets/ over HTTP(S) until interrupted",
		Flags: withS3(
			repoFlag(),
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "listen `HOST:PORT` (port 0 picks a free one)", EnvVars: []string{"BCPUBLISH_ADDR"}},
			&cli.StringFlag{Name: "tls-cert", Usage: "TLS certificate `FILE` (PEM); TLS 1.2 or later", EnvVars: []string{"BCPUBLISH_TLS_CERT"}},
			&cli.StringFlag{Name: "tls-key", Usage: "TLS key `FILE` (PEM)", EnvVars: []string{"BCPUBLISH_TLS_KEY"}},
		),
		OnUsageError: cliutil.OnUsageError,
		Action: func(c *cli.Context) error {
			return runServe(c.Context, globals(c), serveOptions{Store: storeOpts(c, "repo"), Addr: c.String("addr"),
				TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"), Args: c.Args().Slice()})
		},
	}
}

// serveOptions are bcpublish serve's flags.
type serveOptions struct {
	Store                 storeOptions
	Addr, TLSCert, TLSKey string
	Args                  []string
}

// runServe serves until ctx is done.
func runServe(ctx context.Context, g *globalOptions, o serveOptions) error {
	if err := need(o.Args, "repo", o.Store.Location); err != nil {
		return err
	}
	s, err := o.Store.open(ctx)
	if err != nil {
		return err
	}
	if _, err := publisher.Status(ctx, s, timeNow(), 0); err != nil {
		return err
	}
	return publisher.Serve(ctx, s, publisher.ServeOptions{
		Addr:    o.Addr,
		TLSCert: o.TLSCert,
		TLSKey:  o.TLSKey,
		Log:     g.Log.NewLogger(g.Stderr),
		Ready: func(url string) {
			fmt.Fprintf(g.Stdout, "serving %s at %s (metadata at %s/metadata/, targets at %s/targets/)\n", o.Store.Location, url, url, url)
		},
	})
}
