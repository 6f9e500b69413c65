// Command bcfleet is the fleet service and its operators' CLI: it serves
// enrollment and device reports, and lets release engineers and support
// staff see devices and rollouts. It only maps flags to the fleet package
// and errors to exit codes.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/sqlstore"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

var program = cliutil.Program{Name: "bcfleet", Escape: textsafe.Escape}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return program.Run(ctx, newApp(stdout, stderr), args, stderr)
}

// globalOptions are what every command sees.
type globalOptions struct {
	Verbose bool
	Log     cliutil.LogOptions
	Stdout  io.Writer
	Stderr  io.Writer
	Now     func() time.Time
}

func globals(c *cli.Context) *globalOptions {
	return &globalOptions{Verbose: c.Bool("verbose"), Log: cliutil.LogOptionsOf(c), Stdout: c.App.Writer, Stderr: c.App.ErrWriter, Now: time.Now}
}

func (g *globalOptions) logger() *slog.Logger {
	return g.Log.NewLogger(g.Stderr)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return cliutil.Standard(&cli.App{
		Name:            "bcfleet",
		Usage:           "the fleet service: device enrollment, online status, versions and rollouts",
		Version:         version,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		OnUsageError:    cliutil.OnUsageError,
		ExitErrHandler:  func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "verbose", Usage: "log each step to stderr", EnvVars: []string{"BCFLEET_VERBOSE"}},
		},
		Commands: []*cli.Command{
			kekCommand(),
			serveCommand(),
			tokenCommand(),
			devicesCommand(),
			deviceCommand(),
			rolloutCommand(),
			accessCommand(),
		},
	}, "BCFLEET")
}

func dbFlag() cli.Flag {
	return cliutil.Req(&cli.StringFlag{Name: "db", Usage: "the store, `DSN`: sqlite:PATH or postgres://USER@HOST:PORT/DB", EnvVars: []string{"BCFLEET_DB"}})
}

// kekUsage is the --kek flag's help.
const kekUsage = "key-encryption key `URI`: file://PATH (bcfleet kek generate) or awskms:///KEY-ID-OR-ARN-OR-ALIAS[?region=R&endpoint=URL] (AWS KMS, standard AWS credentials)"

func kekFlag() cli.Flag {
	return cliutil.Req(&cli.StringFlag{Name: "kek", Usage: kekUsage, EnvVars: []string{"BCFLEET_KEK"}})
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON for scripts", EnvVars: []string{"BCFLEET_JSON"}}
}

// withStore opens the store, runs fn and closes it.
func withStore(ctx context.Context, dsn string, fn func(fleet.Store) error) error {
	st, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// operator names the person at the terminal in the access log.
func operator() string {
	if u, err := user.Current(); err == nil {
		return "operator:" + u.Username
	}
	return fmt.Sprintf("operator:uid-%d", os.Getuid())
}
