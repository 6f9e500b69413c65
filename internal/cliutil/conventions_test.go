package cliutil

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestRequiredNamesEveryMissingFlag(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{[]string{"x", "y", "z"}, ""},
		{[]string{"", "y", "z"}, "--a is required"},
		{[]string{"x", "", ""}, "--b and --c are required"},
		{[]string{"", "", ""}, "--a, --b and --c are required"},
	} {
		err := Required([]string{"a", "b", "c"}, tc.values...)
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("%q: %q, want %q", tc.values, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%q: no error, want %q", tc.values, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"release", "init", "status", "serve", "keys"}
	for in, want := range map[string]string{
		"relase": "release", "releas": "release", "stauts": "status", "stat": "status",
		"ini": "init", "kyes": "keys", "nothing-like": "", "x": "",
	} {
		if got := Suggest(in, cands); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalize(t *testing.T) {
	app := &cli.App{
		Name: "prog",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state"},
			&cli.BoolFlag{Name: "verbose"},
		},
		Commands: []*cli.Command{
			{Name: "check", Flags: []cli.Flag{&cli.BoolFlag{Name: "json"}, &cli.StringFlag{Name: "component"}}},
			{Name: "own", Flags: []cli.Flag{&cli.StringFlag{Name: "state"}}},
			{Name: "config", Subcommands: []*cli.Command{{Name: "set"}}},
		},
	}
	for _, tc := range []struct{ in, want string }{
		{"prog check --verbose", "prog --verbose check"},
		{"prog check --state DIR --json", "prog --state DIR check --json"},
		{"prog check --component --verbose", "prog check --component --verbose"}, // a value, not a flag
		{"prog check --state=DIR", "prog --state=DIR check"},
		{"prog --state DIR check", "prog --state DIR check"},
		{"prog own --state X", "prog own --state X"}, // the command's own flag
		{"prog check -- --verbose", "prog check -- --verbose"},
		{"prog help", "prog --help"},
		{"prog help config set", "prog config set --help"},
		{"prog config set help x", "prog config set help x"}, // an argument
		{"prog config set --verbose k v", "prog --verbose config set k v"},
		{"prog check X --json --state D", "prog --state D check --json X"}, // flags after arguments
		{"prog config set k -1", "prog config set k -1"},                   // a value that looks like a flag
		{"prog check X -- --json", "prog check X -- --json"},
	} {
		if got := strings.Join(normalize(app, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestGlobalFlagAfterCommand runs an app: the value reaches the command.
func TestGlobalFlagAfterCommand(t *testing.T) {
	var got []string
	app := &cli.App{
		Name: "prog", Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{}, ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{&cli.StringFlag{Name: "state", Value: "/default"}, &cli.BoolFlag{Name: "verbose"}},
		Commands: []*cli.Command{{Name: "check", Action: func(c *cli.Context) error {
			got = []string{c.String("state"), map[bool]string{true: "verbose"}[c.Bool("verbose")]}
			return nil
		}}},
	}
	var stderr bytes.Buffer
	if code := (Program{Name: "prog"}).Run(context.Background(), app, []string{"prog", "check", "--verbose", "--state", "/s"}, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !slices.Equal(got, []string{"/s", "verbose"}) {
		t.Fatalf("the command saw %q", got)
	}
}
