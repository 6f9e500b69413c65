// Command bcagent is the update agent on each instrument PC: it checks the
// repository, stages and applies verified updates and reports status. It
// only maps flags to the client package and errors to exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes (DESIGN.md).
const (
	exitOK                    = 0
	exitFailure               = 1
	exitUsage                 = 2
	exitVerification          = 3
	exitAuthorizationRequired = 4
)

var errUsage = errors.New("usage error")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, client.ErrAuthorizationRequired):
		return exitAuthorizationRequired
	case errors.Is(err, client.ErrVerification):
		return exitVerification
	case errors.Is(err, errUsage), errors.Is(err, client.ErrUsage):
		return exitUsage
	default:
		return exitFailure
	}
}

func main() {
	if state := serviceState(os.Args); state != "" && runAsService(state) {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// userAgent is the User-Agent of the agent's requests.
func userAgent() string { return "bcagent/" + version }

// selfPath is the agent's own executable, resolved at start-up: after a
// self-update os.Executable() would name the old file.
var selfPath string

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if p, err := client.SelfPath(); err == nil {
		selfPath = p
	}
	warnIgnoredDecisionEnv(stderr)
	app := newApp(stdout, stderr)
	unknown := false
	app.CommandNotFound = func(c *cli.Context, name string) {
		unknown = true
		fmt.Fprintf(stderr, "bcagent: unknown command %q; see bcagent --help\n", name)
	}
	err := app.RunContext(ctx, args)
	if err == nil && unknown {
		return exitUsage
	}
	if errors.Is(err, client.ErrRestart) {
		fmt.Fprintln(stdout, "bcagent updated itself; exiting so that the service manager starts the new binary")
		return exitOK
	}
	if err != nil {
		msg := err.Error()
		for _, prefix := range []string{errUsage.Error() + ": ", client.ErrUsage.Error() + ": "} {
			msg = strings.ReplaceAll(msg, prefix, "")
		}
		// One line, escaped: an error may quote a name, a path or a
		// server's message, and none of them may reach the terminal as
		// control sequences.
		fmt.Fprintf(stderr, "bcagent: %s\n", textsafe.Escape(strings.ReplaceAll(msg, "\n", " ")))
	}
	return exitCode(err)
}

// decisionEnv are environment variables that once (or in other tools)
// carried a consent decision or the name of who made it. Consent comes
// only from a person at the terminal or on the command line, so they are
// ignored, and said to be, so that nobody believes they worked.
var decisionEnv = []string{"BCAGENT_AUTHORIZE", "BCAGENT_DECLINE", "BCAGENT_BY", "BCAGENT_FEATURE"}

func warnIgnoredDecisionEnv(stderr io.Writer) {
	var set []string
	for _, v := range decisionEnv {
		if _, ok := os.LookupEnv(v); ok {
			set = append(set, v)
		}
	}
	if len(set) > 0 {
		fmt.Fprintf(stderr, "bcagent: warning: ignoring %s in the environment: a consent decision is taken only from the command line (--authorize, --decline, --by) or the terminal prompt\n", strings.Join(set, ", "))
	}
}

// serviceState finds --state in the arguments the service was registered
// with (bcagent --state DIR run).
func serviceState(args []string) string {
	if len(args) == 0 || args[len(args)-1] != "run" {
		return ""
	}
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "--state" {
			return args[i+1]
		}
	}
	return defaultStateDir()
}

func defaultStateDir() string {
	if runtime.GOOS == "windows" {
		if pd := os.Getenv("ProgramData"); pd != "" {
			return filepath.Join(pd, "BeckmanConnect", "bcagent")
		}
	}
	return "/var/lib/bcagent"
}

func newApp(stdout, stderr io.Writer) *cli.App {
	onUsage := func(c *cli.Context, err error, _ bool) error { return usageErr("%v", err) }
	app := &cli.App{
		Name:            "bcagent",
		Usage:           "keep BeckmanConnect components on this PC up to date, verified and authorized",
		Version:         version,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		OnUsageError:    onUsage,
		ExitErrHandler:  func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Value: defaultStateDir(), Usage: "agent state `DIR`", EnvVars: []string{"BCAGENT_STATE"}},
			&cli.BoolFlag{Name: "verbose", Usage: "log each step to stderr", EnvVars: []string{"BCAGENT_VERBOSE"}},
		},
		Commands: []*cli.Command{
			initCommand(),
			checkCommand(),
			stageCommand(),
			applyCommand(),
			statusCommand(),
			rollbackCommand(),
			consentCommand(),
			auditCommand(),
			notificationsCommand(),
			runCommand(),
			pinCommand(),
			unpinCommand(),
			serviceCommand(),
		},
	}
	var set func([]*cli.Command)
	set = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = onUsage
			set(c.Subcommands)
		}
	}
	set(app.Commands)
	return app
}

func logger(c *cli.Context) *slog.Logger {
	if c.Bool("verbose") {
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	}
	return nil
}

// withAgent opens the state directory, runs fn and closes it.
func withAgent(c *cli.Context, fn func(*client.Agent) error) error {
	if c.Args().Len() > 0 {
		return usageErr("unexpected argument %q", c.Args().First())
	}
	a, err := client.OpenWait(c.Context, c.String("state"), &client.OpenOptions{Log: logger(c), UserAgent: userAgent()}, 30*time.Second)
	if err != nil {
		return err
	}
	defer a.Close()
	a.SetSelfPath(selfPath)
	return fn(a)
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON for scripts", EnvVars: []string{"BCAGENT_JSON"}}
}

func componentFlag() cli.Flag {
	return &cli.StringFlag{Name: "component", Usage: "only this component `NAME`", EnvVars: []string{"BCAGENT_COMPONENT"}}
}
