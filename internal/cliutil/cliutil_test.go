package cliutil_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, cliutil.ExitOK},
		{"plain failure", errors.New("disk full"), cliutil.ExitFailure},
		{"client verification", fmt.Errorf("%w: bad hash", client.ErrVerification), cliutil.ExitVerification},
		{"signer verification", fmt.Errorf("stage: %w: untrusted root", signer.ErrVerification), cliutil.ExitVerification},
		{"repo verification", fmt.Errorf("%w: 1 of 2 signatures", repo.ErrVerification), cliutil.ExitVerification},
		{"usage error", errs.Usagef("component", "--component is required"), cliutil.ExitUsage},
		{"client usage", fmt.Errorf("%w: bad", client.ErrUsage), cliutil.ExitUsage},
		{"publisher usage", fmt.Errorf("open: %w", errs.Usage("", publisher.ErrUsage)), cliutil.ExitUsage},
		{"authorization required", fmt.Errorf("%w: feature ft", client.ErrAuthorizationRequired), cliutil.ExitAuthorizationRequired},
		{"authorization before verification", fmt.Errorf("%w: %w", client.ErrAuthorizationRequired, signer.ErrVerification), cliutil.ExitAuthorizationRequired},
		{"verification before usage", errs.Usage("file", fmt.Errorf("--file: %w", signer.ErrVerification)), cliutil.ExitVerification},
		{"a program's own usage error, not counted", fmt.Errorf("%w: ..", repo.ErrBadPath), cliutil.ExitFailure},
	} {
		if got := cliutil.ExitCode(tc.err); got != tc.want {
			t.Errorf("%s: ExitCode(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
	if got := cliutil.ExitCode(fmt.Errorf("%w: ..", repo.ErrBadPath), repo.ErrBadPath); got != cliutil.ExitUsage {
		t.Errorf("ExitCode with repo.ErrBadPath counted as usage = %d", got)
	}
}

func TestRequiredAndNoArgs(t *testing.T) {
	err := cliutil.Required([]string{"repo", "keys"}, "/r", "")
	var ue *errs.UsageError
	if !errors.As(err, &ue) || ue.Flag != "keys" || err.Error() != "--keys is required" {
		t.Fatalf("Required = %v (%#v)", err, ue)
	}
	if cliutil.Required([]string{"repo"}, "/r") != nil || cliutil.NoArgs(nil) != nil {
		t.Fatal("complains of nothing missing")
	}
	if err := cliutil.NoArgs([]string{"x", "y"}); !errors.Is(err, errs.ErrUsage) || err.Error() != `unexpected argument "x"` {
		t.Fatalf("NoArgs = %v", err)
	}
}

func TestProgramRun(t *testing.T) {
	app := func(err error) *cli.App {
		return &cli.App{Name: "prog", OnUsageError: cliutil.OnUsageError, ExitErrHandler: func(*cli.Context, error) {},
			Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{},
			Commands: []*cli.Command{{Name: "do", OnUsageError: cliutil.OnUsageError, Action: func(*cli.Context) error { return err }}}}
	}
	p := cliutil.Program{Name: "prog", Escape: func(s string) string { return strings.ReplaceAll(s, "\x1b", `\x1b`) }}
	for _, tc := range []struct {
		args     []string
		err      error
		code     int
		reported string
	}{
		{[]string{"prog", "do"}, nil, cliutil.ExitOK, ""},
		{[]string{"prog", "nosuch"}, nil, cliutil.ExitUsage, "prog: unknown command \"nosuch\" for prog (see prog --help)\n"},
		{[]string{"prog", "od"}, nil, cliutil.ExitUsage, "prog: unknown command \"od\" for prog; did you mean prog do? (see prog --help)\n"},
		{[]string{"prog", "do", "--nosuch"}, nil, cliutil.ExitUsage, "prog: unknown flag --nosuch for prog do (see prog do --help)\n"},
		{[]string{"prog", "do"}, errs.Usagef("x", "--x \x1b[2K bad\nline"), cliutil.ExitUsage, "prog: --x \\x1b[2K bad line\n"},
		{[]string{"prog", "do"}, fmt.Errorf("fetch: %w", signer.ErrVerification), cliutil.ExitVerification, "prog: fetch: code signature verification failed\n"},
	} {
		var stderr bytes.Buffer
		if code := p.Run(context.Background(), app(tc.err), tc.args, &stderr); code != tc.code || stderr.String() != tc.reported {
			t.Errorf("%v: code %d, reported %q; want %d, %q", tc.args, code, stderr.String(), tc.code, tc.reported)
		}
	}
	restart := errors.New("restart")
	p.Handle = func(err error) (int, bool) { return 0, errors.Is(err, restart) }
	var stderr bytes.Buffer
	if code := p.Run(context.Background(), app(restart), []string{"prog", "do"}, &stderr); code != 0 || stderr.Len() != 0 {
		t.Errorf("handled error: code %d, reported %q", code, stderr.String())
	}
}
