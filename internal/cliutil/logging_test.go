package cliutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/errs"
)

func TestLogOptions(t *testing.T) {
	cases := []struct {
		name    string
		opts    LogOptions
		want    []string // each line, in order, must start with these
		without string   // and never contain this
	}{
		{"text at info", LogOptions{Format: "text", Level: "info"}, []string{"time=", "time=", "time="}, "level=DEBUG"},
		{"text at warn", LogOptions{Format: "text", Level: "warn"}, []string{"time=", "time="}, "level=INFO"},
		{"json at debug", LogOptions{Format: "json", Level: "debug"}, []string{`{"time":`, `{"time":`, `{"time":`, `{"time":`}, ""},
		{"journal text", LogOptions{Format: "text", Level: "debug", Journal: true}, []string{"<7>level=DEBUG", "<6>level=INFO", "<4>level=WARN", "<3>level=ERROR"}, "time="},
		{"journal json at error", LogOptions{Format: "json", Level: "error", Journal: true}, []string{`<3>{"level":"ERROR"`}, "time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.opts.Check(); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			log := c.opts.NewLogger(&buf).With("component", "nc")
			log.Debug("d")
			log.Info("i")
			log.Warn("w")
			log.Error("e")
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if len(lines) != len(c.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(c.want), buf.String())
			}
			for i, l := range lines {
				if !strings.HasPrefix(l, c.want[i]) || !strings.Contains(l, "component") {
					t.Errorf("line %d = %q, want it to start with %q and keep the logger's attributes", i, l, c.want[i])
				}
				if c.without != "" && strings.Contains(l, c.without) {
					t.Errorf("line %d = %q has %q", i, l, c.without)
				}
				if c.opts.Format == "json" {
					var v map[string]any
					if err := json.Unmarshal([]byte(strings.TrimLeft(l, "<0123456789>")), &v); err != nil {
						t.Errorf("line %d is not JSON: %v", i, err)
					}
				}
			}
		})
	}
}

func TestLogOptionsRefused(t *testing.T) {
	for _, o := range []LogOptions{{Format: "xml", Level: "info"}, {Format: "text", Level: "trace"}, {Format: "", Level: "info"}} {
		err := o.Check()
		if !errors.Is(err, errs.ErrUsage) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want a one-line usage error", o, err)
		}
	}
}
