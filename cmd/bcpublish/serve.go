package main

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the repository's metadata/ and targets/ over HTTP(S) until interrupted",
		Flags: []cli.Flag{
			repoFlag(),
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "listen `HOST:PORT` (port 0 picks a free one)", EnvVars: []string{"BCPUBLISH_ADDR"}},
			&cli.StringFlag{Name: "tls-cert", Usage: "TLS certificate `FILE` (PEM); TLS 1.2 or later", EnvVars: []string{"BCPUBLISH_TLS_CERT"}},
			&cli.StringFlag{Name: "tls-key", Usage: "TLS key `FILE` (PEM)", EnvVars: []string{"BCPUBLISH_TLS_KEY"}},
		},
		Action: func(c *cli.Context) error {
			if err := need(c, "repo"); err != nil {
				return err
			}
			s, err := openStore(c)
			if err != nil {
				return err
			}
			if _, err := publisher.Status(c.Context, s, timeNow(), 0); err != nil {
				return err
			}
			return publisher.Serve(c.Context, s, publisher.ServeOptions{
				Addr:    c.String("addr"),
				TLSCert: c.String("tls-cert"),
				TLSKey:  c.String("tls-key"),
				Log:     slog.New(slog.NewTextHandler(c.App.ErrWriter, nil)),
				Ready: func(url string) {
					fmt.Fprintf(c.App.Writer, "serving %s at %s (metadata at %s/metadata/, targets at %s/targets/)\n", c.String("repo"), url, url, url)
				},
			})
		},
	}
}
