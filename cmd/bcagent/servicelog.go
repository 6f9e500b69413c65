package main

import (
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
)

// The Windows service's log flags. The service manager starts the agent
// with the arguments `bcagent service install` registered (bcagent
// --state DIR [--log-format F] [--log-level L] run) before any flag is
// parsed (main, runAsService), so the service reads its log flags from
// them here, with the same variables and defaults as the command line:
// the flag, else BCAGENT_LOG_FORMAT / BCAGENT_LOG_LEVEL, else text at info.

// serviceLogOptions are the log options of the service's arguments and
// environment; a value the flags do not take is the flags' usage error.
func serviceLogOptions(args []string, getenv func(string) string) (cliutil.LogOptions, error) {
	o := cliutil.LogOptions{Format: getenv("BCAGENT_LOG_FORMAT"), Level: getenv("BCAGENT_LOG_LEVEL")}
	for i := 1; i < len(args); i++ {
		name, value, inline := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") || (name != "log-format" && name != "log-level") {
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				break
			}
			i++
			value = args[i]
		}
		if name == "log-format" {
			o.Format = value
		} else {
			o.Level = value
		}
	}
	if o.Format == "" {
		o.Format = "text"
	}
	if o.Level == "" {
		o.Level = "info"
	}
	return o, o.Check()
}

// serviceLogArgs are the log flags `service install` registers: those of
// o that differ from the defaults, so that the service logs as the
// command that installed it was told to.
func serviceLogArgs(o cliutil.LogOptions) []string {
	var args []string
	if o.Format != "" && o.Format != "text" {
		args = append(args, "--log-format", o.Format)
	}
	if o.Level != "" && o.Level != "info" {
		args = append(args, "--log-level", o.Level)
	}
	return args
}
