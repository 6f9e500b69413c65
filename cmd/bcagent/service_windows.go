//go:build windows

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/eventlog"
)

const serviceName = "bcagent"

// runAsService runs the agent under the Windows service manager if that is
// how it was started; it reports whether it did. The service logs as its
// registered log flags say (servicelog.go), to stderr, which the service
// manager discards, and its warnings and errors, notifications and audit
// entries go to the Application log under the source bcagent
// (docs/operations.md, "The Windows Event Log").
func runAsService(stateDir string) bool {
	is, err := svc.IsWindowsService()
	if err != nil || !is {
		return false
	}
	if p, err := client.SelfPath(); err == nil {
		selfPath = p
	}
	h := &handler{state: stateDir}
	if el, err := eventlog.Open(eventlog.Source); err == nil {
		defer el.Close()
		h.events = el
	}
	opts, err := serviceLogOptions(os.Args, os.Getenv)
	if err != nil {
		// The registered arguments are wrong: say so where an admin
		// looks, and stop (the service manager reports the exit code).
		if h.events != nil {
			_ = client.WriteEvent(h.events, client.EventError, client.EventIDServiceFailed, "bcagent service: "+err.Error())
		}
		_ = svc.Run(serviceName, failedHandler{})
		return true
	}
	h.log = opts.NewLogger(os.Stderr)
	if h.events != nil {
		h.log = slog.New(eventlog.NewHandler(h.log.Handler(), h.events))
	}
	_ = svc.Run(serviceName, h)
	return true
}

// recoveryActions restart the service a minute after it exits with a
// failure code: how a self-update (exit code 1, client.ErrRestart) starts
// the new binary.
var recoveryActions = []mgr.RecoveryAction{{Type: mgr.ServiceRestart, Delay: time.Minute}}

// ensureRecovery sets the recovery actions on the service itself when it
// starts: an install that did not set them (wixl's MSI cannot) would
// otherwise leave the agent stopped after it updated itself. Running as
// LocalSystem, the service may change its own configuration; a failure is
// reported, not fatal.
func (h *handler) ensureRecovery() {
	m, err := mgr.Connect()
	if err != nil {
		h.log.Warn("service recovery actions", "err", err)
		return
	}
	defer m.Disconnect()
	s, err := m.OpenService(serviceName)
	if err != nil {
		h.log.Warn("service recovery actions", "err", err)
		return
	}
	defer s.Close()
	if err := s.SetRecoveryActions(recoveryActions, 86400); err != nil {
		h.log.Warn("service recovery actions: a self-update will not restart the service until the next boot", "err", err)
	}
}

type handler struct {
	state  string
	log    *slog.Logger
	events client.EventSink // nil: the Application log could not be opened
}

// event writes a service event, if there is an event log.
func (h *handler) event(level client.EventLevel, id client.EventID, msg string) {
	if h.events != nil {
		_ = client.WriteEvent(h.events, level, id, msg)
	}
}

func (h *handler) Execute(args []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	s <- svc.Status{State: svc.StartPending}
	h.ensureRecovery()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- client.Run(ctx, h.state, h.log, client.RunOptions{SelfPath: selfPath, UserAgent: userAgent()})
	}()
	s <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	h.event(client.EventInformation, client.EventIDServiceStarted, fmt.Sprintf("bcagent %s service started (state directory %s)", version, h.state))
	for {
		select {
		case c := <-r:
			switch c.Cmd {
			case svc.Interrogate:
				s <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				s <- svc.Status{State: svc.StopPending}
				cancel()
				<-done
				h.event(client.EventInformation, client.EventIDServiceStopped, "bcagent service stopped")
				return false, 0
			}
		case err := <-done:
			cancel()
			switch {
			case errors.Is(err, client.ErrRestart):
				// Exit code 1 has the service manager's recovery action
				// (set by service install and at every start:
				// ensureRecovery) start the new binary.
				h.event(client.EventInformation, client.EventIDServiceStopped, "bcagent service stopped: it updated itself; the service manager's recovery action starts the new version")
				return true, 1
			case err != nil:
				h.event(client.EventError, client.EventIDServiceFailed, "bcagent service stopped: "+err.Error())
				return true, 1
			}
			h.event(client.EventInformation, client.EventIDServiceStopped, "bcagent service stopped")
			return false, 0
		}
	}
}

// failedHandler reports to the service manager that the service cannot
// run (its arguments are wrong), with exit code 2.
type failedHandler struct{}

func (failedHandler) Execute([]string, <-chan svc.ChangeRequest, chan<- svc.Status) (bool, uint32) {
	return true, exitUsage
}

// agentEvents is the Application log for the commands that change the
// agent (client.OpenOptions.Events): an install or a consent decision at
// the terminal is written there as the service's are. Opened once; nil if
// it cannot be.
var agentEvents = sync.OnceValue(func() client.EventSink {
	el, err := eventlog.Open(eventlog.Source)
	if err != nil {
		return nil
	}
	return el
})

func serviceCommand() *cli.Command {
	sub := func(name, usage string, run func(context.Context, *globalOptions, *mgr.Mgr) error) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, OnUsageError: cliutil.OnUsageError, Action: func(c *cli.Context) error {
			if err := cliutil.NoArgs(c.Args().Slice()); err != nil {
				return err
			}
			return withServiceManager(c.Context, globals(c), run)
		}}
	}
	return &cli.Command{
		Name:         "service",
		Usage:        "install, uninstall, start or stop the Windows service",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{
			sub("install", "register bcagent as an automatic Windows service", runServiceInstall),
			sub("uninstall", "remove the Windows service", runServiceUninstall),
			sub("start", "start the Windows service", runServiceStart),
			sub("stop", "stop the Windows service", runServiceStop),
		},
	}
}

// withServiceManager connects to the service manager for run.
func withServiceManager(ctx context.Context, g *globalOptions, run func(context.Context, *globalOptions, *mgr.Mgr) error) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("service manager: %w (run as Administrator)", err)
	}
	defer m.Disconnect()
	return run(ctx, g, m)
}

// runServiceInstall registers the event source bcagent in the
// Application log, then the service (with the log flags given to this
// command, when they are not the defaults).
func runServiceInstall(_ context.Context, g *globalOptions, m *mgr.Mgr) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	registered, err := eventlog.Install(eventlog.Source)
	if err != nil {
		return fmt.Errorf("registering the event source %s in the Application log: %w (run as Administrator)", eventlog.Source, err)
	}
	args := append(append([]string{"--state", g.State}, serviceLogArgs(g.Log)...), "run")
	s, err := m.CreateService(serviceName, exe, mgr.Config{
		DisplayName: "BeckmanConnect update agent", StartType: mgr.StartAutomatic,
		Description: "Keeps BeckmanConnect components up to date, verified and authorized.",
	}, args...)
	if err != nil {
		if registered {
			_, _ = eventlog.Remove(eventlog.Source)
		}
		return err
	}
	defer s.Close()
	_ = s.SetRecoveryActions(recoveryActions, 86400)
	fmt.Fprintf(g.Stdout, "installed service %s (%s %s)\n", serviceName, exe, strings.Join(args, " "))
	if registered {
		fmt.Fprintf(g.Stdout, "registered the event source %s in the Application log\n", eventlog.Source)
	}
	return nil
}

// runServiceUninstall removes the service and the event source (events
// already written stay in the log).
func runServiceUninstall(_ context.Context, g *globalOptions, m *mgr.Mgr) error {
	s, err := m.OpenService(serviceName)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Delete(); err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "removed service %s\n", serviceName)
	removed, err := eventlog.Remove(eventlog.Source)
	if err != nil {
		return fmt.Errorf("removing the event source %s from the Application log: %w", eventlog.Source, err)
	}
	if removed {
		fmt.Fprintf(g.Stdout, "removed the event source %s from the Application log\n", eventlog.Source)
	}
	return nil
}

func runServiceStart(_ context.Context, _ *globalOptions, m *mgr.Mgr) error {
	s, err := m.OpenService(serviceName)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Start()
}

func runServiceStop(_ context.Context, _ *globalOptions, m *mgr.Mgr) error {
	s, err := m.OpenService(serviceName)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Control(svc.Stop)
	return err
}
