package main

import (
	"errors"
	"slices"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/errs"
)

func TestServiceLogOptions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		format   string
		level    string
		badUsage string // the flag a usage error names
	}{
		{"defaults", []string{"bcagent", "--state", `C:\ProgramData\BeckmanConnect\bcagent`, "run"}, nil, "text", "info", ""},
		{"flags", []string{"bcagent", "--state", "S", "--log-format", "json", "--log-level", "warn", "run"}, nil, "json", "warn", ""},
		{"flags with =", []string{"bcagent", "--log-format=json", "-log-level=debug", "--state", "S", "run"}, nil, "json", "debug", ""},
		{"environment", []string{"bcagent", "--state", "S", "run"}, map[string]string{"BCAGENT_LOG_FORMAT": "json", "BCAGENT_LOG_LEVEL": "error"}, "json", "error", ""},
		{"flag over environment", []string{"bcagent", "--log-level", "debug", "run"}, map[string]string{"BCAGENT_LOG_LEVEL": "error"}, "text", "debug", ""},
		{"a --state named like a flag is a value", []string{"bcagent", "--state", "log-format", "run"}, nil, "text", "info", ""},
		{"bad format", []string{"bcagent", "--log-format", "xml", "run"}, nil, "", "", "log-format"},
		{"bad level from the environment", []string{"bcagent", "run"}, map[string]string{"BCAGENT_LOG_LEVEL": "loud"}, "", "", "log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := serviceLogOptions(tc.args, func(k string) string { return tc.env[k] })
			if tc.badUsage != "" {
				var ue *errs.UsageError
				if !errors.As(err, &ue) || ue.Flag != tc.badUsage || cliutil.ExitCode(err) != exitUsage {
					t.Fatalf("err = %v (exit %d), want a usage error naming --%s", err, cliutil.ExitCode(err), tc.badUsage)
				}
				return
			}
			if err != nil || o.Format != tc.format || o.Level != tc.level {
				t.Fatalf("= %+v, %v; want %s at %s", o, err, tc.format, tc.level)
			}
		})
	}
}

func TestServiceLogArgs(t *testing.T) {
	for _, tc := range []struct {
		o    cliutil.LogOptions
		want []string
	}{
		{cliutil.LogOptions{Format: "text", Level: "info"}, nil},
		{cliutil.LogOptions{Format: "json", Level: "info"}, []string{"--log-format", "json"}},
		{cliutil.LogOptions{Format: "text", Level: "debug"}, []string{"--log-level", "debug"}},
	} {
		got := serviceLogArgs(tc.o)
		if !slices.Equal(got, tc.want) {
			t.Errorf("serviceLogArgs(%+v) = %q, want %q", tc.o, got, tc.want)
		}
		// What install registers, the service reads back.
		args := append(append([]string{"bcagent", "--state", "S"}, got...), "run")
		back, err := serviceLogOptions(args, func(string) string { return "" })
		if err != nil || back.Format != tc.o.Format || back.Level != tc.o.Level {
			t.Errorf("registered %q, read back %+v, %v", args, back, err)
		}
	}
}
