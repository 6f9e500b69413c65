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
	action := func(fn func(m *mgr.Mgr, c *cli.Context) error) cli.ActionFunc {
		return func(c *cli.Context) error {
			m, err := mgr.Connect()
			if err != nil {
				return fmt.Errorf("service manager: %w (run as Administrator)", err)
			}
			defer m.Disconnect()
			return fn(m, c)
		}
	}
	return &cli.Command{
		Name:         "service",
		Usage:        "install, uninstall, start or stop the Windows service",
		OnUsageError: cliutil.OnUsageError,
		Subcommands: []*cli.Command{
			{Name: "install", OnUsageError: cliutil.OnUsageError, Usage: "register bcagent as an automatic Windows service", Action: action(func(m *mgr.Mgr, c *cli.Context) error {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				s, err := m.CreateService(serviceName, exe, mgr.Config{
					DisplayName: "BeckmanConnect update agent", StartType: mgr.StartAutomatic,
					Description: "Keeps BeckmanConnect components up to date, verified and authorized.",
				}, "--state", c.String("state"), "run")
				if err != nil {
					return err
				}
				defer s.Close()
				_ = s.SetRecoveryActions([]mgr.RecoveryAction{{Type: mgr.ServiceRestart, Delay: time.Minute}}, 86400)
				fmt.Fprintf(c.App.Writer, "installed service %s (%s --state %s run)\n", serviceName, exe, c.String("state"))
				return nil
			})},
			{Name: "uninstall", OnUsageError: cliutil.OnUsageError, Usage: "remove the Windows service", Action: action(func(m *mgr.Mgr, c *cli.Context) error {
				s, err := m.OpenService(serviceName)
				if err != nil {
					return err
				}
				defer s.Close()
				if err := s.Delete(); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "removed service %s\n", serviceName)
				return nil
			})},
			{Name: "start", OnUsageError: cliutil.OnUsageError, Usage: "start the Windows service", Action: action(func(m *mgr.Mgr, c *cli.Context) error {
				s, err := m.OpenService(serviceName)
				if err != nil {
					return err
				}
				defer s.Close()
				return s.Start()
			})},
			{Name: "stop", OnUsageError: cliutil.OnUsageError, Usage: "stop the Windows service", Action: action(func(m *mgr.Mgr, c *cli.Context) error {
				s, err := m.OpenService(serviceName)
				if err != nil {
					return err
				}
				defer s.Close()
				_, err = s.Control(svc.Stop)
				return err
			})},
		},
	}
}
