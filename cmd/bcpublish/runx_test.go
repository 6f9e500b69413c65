package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

// The run functions take their options directly: a bad or missing value
// is a usage error naming the flag (exit 2), and nothing is written.
func TestRunFunctionsUsageErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	g := &globalOptions{Stdout: &out, Stderr: &errOut}
	ctx := context.Background()
	dir := t.TempDir()
	refs := keyOptions{Refs: publisher.KeyRefs{repo.RoleTargets: {filepath.Join(dir, "targets.key")}}}
	for _, tc := range []struct {
		name, flag, msg string
		err             error
	}{
		{"keys generate --type rsa", "type", `--type "rsa": want ed25519 or ecdsa-p256`, runKeysGenerate(ctx, g, keysGenerateOptions{Out: dir, Type: "rsa"})},
		{"keys generate without --out", "out", "--out is required", runKeysGenerate(ctx, g, keysGenerateOptions{Type: "ed25519"})},
		{"release add without --repo", "repo", "--repo, --keys, --trust, --component, --version, --platform and --file are required", runReleaseAdd(ctx, g, releaseAddOptions{})},
		{"release add: role keys stand for --keys", "trust", "--trust, --component, --version, --platform and --file are required",
			runReleaseAdd(ctx, g, releaseAddOptions{Store: storeOptions{Flag: "repo", Location: dir}, Keys: refs})},
		{"release add, half the codesign flags", "codesign-key", "--codesign-cert and --codesign-key go together",
			func() error { _, err := codesignOptions{Cert: "chain.pem"}.signer(); return err }()},
		{"root sign without --key", "key", "usage: bcpublish root sign --key KEY FILE", runRootSign(ctx, g, rootSignOptions{Args: []string{"f"}})},
		{"root stage without --role", "role", "--role is required", checkChange(publisher.RootChange{Add: []string{"k.pub"}})},
		{"status --warn-within zz", "warn-within", `--warn-within "zz": want a duration such as 14d or 36h`,
			runStatus(ctx, g, statusOptions{Store: storeOptions{Flag: "repo", Location: dir}, WarnWithin: "zz"})},
		{"status of a bad s3 location", "repo", "--repo s3:///x: want s3://bucket/prefix",
			runStatus(ctx, g, statusOptions{Store: storeOptions{Flag: "repo", Location: "s3:///x"}, WarnWithin: "14d"})},
		{"copy without --to", "to", "--to is required", runCopy(ctx, g, copyOptions{From: storeOptions{Flag: "from", Location: dir}})},
		{"gate with an argument", "", `unexpected argument "x"`, runReleaseGate(ctx, g, releaseGateOptions{Component: "nc", Version: "1.0.0",
			Platform: "linux-amd64", File: "f", Out: "o", Args: []string{"x"}})},
	} {
		var ue *errs.UsageError
		if !errors.As(tc.err, &ue) || ue.Flag != tc.flag || tc.err.Error() != tc.msg {
			t.Errorf("%s: %v (%#v), want a usage error about %q: %q", tc.name, tc.err, ue, tc.flag, tc.msg)
		}
		if exitCode(tc.err) != 2 {
			t.Errorf("%s: exit code %d", tc.name, exitCode(tc.err))
		}
	}
	if out.Len()+errOut.Len() != 0 {
		t.Errorf("wrote %q, %q", out.String(), errOut.String())
	}
}
