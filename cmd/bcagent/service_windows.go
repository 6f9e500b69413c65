//go:build windows

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

const serviceName = "bcagent"

// runAsService runs the agent under the Windows service manager if that is
// how it was started; it reports whether it did.
func runAsService(stateDir string) bool {
	is, err := svc.IsWindowsService()
	if err != nil || !is {
		return false
	}
	if p, err := client.SelfPath(); err == nil {
		selfPath = p
	}
	_ = svc.Run(serviceName, &handler{state: stateDir})
	return true
}

type handler struct{ state string }

func (h *handler) Execute(args []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	s <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- client.Run(ctx, h.state, slog.Default(), client.RunOptions{SelfPath: selfPath, UserAgent: userAgent()})
	}()
	s <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
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
				return false, 0
			}
		case err := <-done:
			cancel()
			if err != nil {
				return true, 1
			}
			return false, 0
		}
	}
}

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

func runServiceInstall(_ context.Context, g *globalOptions, m *mgr.Mgr) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	s, err := m.CreateService(serviceName, exe, mgr.Config{
		DisplayName: "BeckmanConnect update agent", StartType: mgr.StartAutomatic,
		Description: "Keeps BeckmanConnect components up to date, verified and authorized.",
	}, "--state", g.State, "run")
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetRecoveryActions([]mgr.RecoveryAction{{Type: mgr.ServiceRestart, Delay: time.Minute}}, 86400)
	fmt.Fprintf(g.Stdout, "installed service %s (%s --state %s run)\n", serviceName, exe, g.State)
	return nil
}

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
