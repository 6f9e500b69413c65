package main

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/errs"
)

// The run functions take their options directly: a bad or missing value
// is a usage error naming the flag, and nothing is written.
func TestRunFunctionsUsageErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	g := &globalOptions{State: t.TempDir(), Stdout: &out, Stderr: &errOut}
	ctx := context.Background()
	full := initOptions{RepoURL: "https://updates.example", Root: "root.json", Trust: "trust", Components: []string{"nc"}, DeviceID: "INST-1", DeviceModel: "Navios EX"}
	noRoot := full
	noRoot.Root = ""
	badPolicy := full
	badPolicy.Policies = []string{"nc"}
	zeroRate := full
	zeroRate.MinRateSet = true
	for _, tc := range []struct {
		name, flag, msg string
		err             error
	}{
		{"init without --root", "root", "--root is required", runInit(ctx, g, noRoot)},
		{"init --policy without =", "policy", `--policy "nc": want COMPONENT=notify|stage|auto`, runInit(ctx, g, badPolicy)},
		{"init --min-rate 0", "min-rate", "", runInit(ctx, g, zeroRate)},
		{"init with an argument", "", `unexpected argument "extra"`, runInit(ctx, g, initOptions{Args: []string{"extra"}})},
		{"rollback without --component", "component", "--component is required", runRollback(ctx, g, componentOptions{})},
		{"pin without --version", "version", "--version is required", runPin(ctx, g, pinOptions{Component: "nc"})},
		{"revoke without --by", "by", "--by is required", runConsentRevoke(ctx, g, revokeOptions{Component: "nc", Feature: "f"})},
		{"revoke without anything: every flag at once", "component", "--component, --feature and --by are required", runConsentRevoke(ctx, g, revokeOptions{})},
		{"status with an argument", "", `unexpected argument "x"`, runStatus(ctx, g, statusOptions{Args: []string{"x"}})},
	} {
		var ue *errs.UsageError
		if !errors.As(tc.err, &ue) || ue.Flag != tc.flag || (tc.msg != "" && tc.err.Error() != tc.msg) {
			t.Errorf("%s: %v (%#v), want a usage error about %q: %q", tc.name, tc.err, ue, tc.flag, tc.msg)
		}
		if exitCode(tc.err) != exitUsage {
			t.Errorf("%s: exit code %d", tc.name, exitCode(tc.err))
		}
	}
	if err := runRun(ctx, g, runOptions{Cycles: -1}); !errors.Is(err, errs.ErrUsage) || err.Error() != "--cycles -1 is out of range: want 0 (run until stopped) or 1 to 1000000" {
		t.Errorf("run --cycles -1: %v", err)
	}
	if out.Len()+errOut.Len() != 0 {
		t.Errorf("wrote %q, %q", out.String(), errOut.String())
	}
}
