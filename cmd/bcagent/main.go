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
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitCode maps an error to the exit code (docs/design.md).
func exitCode(err error) int { return cliutil.ExitCode(err) }

// Exit codes (docs/design.md), as tests name them.
const (
	exitOK                    = cliutil.ExitOK
	exitFailure               = cliutil.ExitFailure
	exitUsage                 = cliutil.ExitUsage
	exitVerification          = cliutil.ExitVerification
	exitAuthorizationRequired = cliutil.ExitAuthorizationRequired
)

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
	return program(stdout).Run(ctx, newApp(stdout, stderr), args, stderr)
}

// program is how bcagent reports: errors escaped (they may quote a name, a
// path or a server's message, none of which may reach the terminal as
// control sequences), and a self-update is success.
func program(stdout io.Writer) cliutil.Program {
	return cliutil.Program{
		Name:   "bcagent",
		Escape: textsafe.Escape,
		Handle: func(err error) (int, bool) {
			var he *healthError
			if errors.As(err, &he) {
				return he.code, true // status printed why
			}
			if errors.Is(err, client.ErrRestart) {
				fmt.Fprintln(stdout, "bcagent updated itself; exiting so that the service manager starts the new binary")
				return exitOK, true
			}
			return 0, false
		},
	}
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

// globalOptions are the options every command sees: the app's flags and
// its output.
type globalOptions struct {
	State   string
	Verbose bool
	Log     cliutil.LogOptions
	LogSet  bool // --log-level given: log even without --verbose
	Stdout  io.Writer
	Stderr  io.Writer
}

// globals reads the app's flags from any command's context.
func globals(c *cli.Context) *globalOptions {
	return &globalOptions{State: c.String("state"), Verbose: c.Bool("verbose"), Log: cliutil.LogOptionsOf(c), LogSet: cliutil.LogLevelSet(c),
		Stdout: c.App.Writer, Stderr: c.App.ErrWriter}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return cliutil.Standard(&cli.App{
		Name:            "bcagent",
		Usage:           "keep BeckmanConnect components on this PC up to date, verified and authorized",
		Version:         version,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		OnUsageError:    cliutil.OnUsageError,
		ExitErrHandler:  func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Value: defaultStateDir(), Usage: "agent state `DIR`", EnvVars: []string{"BCAGENT_STATE"}},
			&cli.BoolFlag{Name: "verbose", Usage: "log each step to stderr", EnvVars: []string{"BCAGENT_VERBOSE"}},
		},
		Commands: []*cli.Command{
			initCommand(),
			checkCommand(),
			stageCommand(),
			importCommand(),
			applyCommand(),
			statusCommand(),
			rollbackCommand(),
			consentCommand(),
			auditCommand(),
			notificationsCommand(),
			runCommand(),
			pinCommand(),
			unpinCommand(),
			configCommand(),
			enrollCommand(),
			reportCommand(),
			rotateKeyCommand(),
			serviceCommand(),
		},
	}, "BCAGENT")
}

func (g *globalOptions) logger() *slog.Logger {
	if g.Verbose || g.LogSet {
		return g.Log.NewLogger(g.Stderr)
	}
	return nil
}

// withAgent opens the state directory (a command that takes no arguments),
// runs fn and closes it.
func withAgent(ctx context.Context, g *globalOptions, args []string, fn func(*client.Agent) error) error {
	if err := cliutil.NoArgs(args); err != nil {
		return err
	}
	a, err := client.OpenWait(ctx, g.State, &client.OpenOptions{Log: g.logger(), UserAgent: userAgent(), Events: agentEvents()}, 30*time.Second)
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
