// Command bcpublish is the release engineers' CLI: role keys, repository
// init, releases, status, serving and code signing. It only maps flags to
// the publisher package and errors to exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes (DESIGN.md).
const (
	exitOK           = 0
	exitFailure      = 1
	exitUsage        = 2
	exitVerification = 3
)

var errUsage = errors.New("usage error")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, signer.ErrVerification), errors.Is(err, repo.ErrVerification):
		return exitVerification
	case errors.Is(err, errUsage), errors.Is(err, publisher.ErrUsage), errors.Is(err, repo.ErrBadPath):
		return exitUsage
	default:
		return exitFailure
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the exit code; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	unknown := false
	app.CommandNotFound = func(c *cli.Context, name string) {
		unknown = true
		fmt.Fprintf(stderr, "bcpublish: unknown command %q; see bcpublish --help\n", name)
	}
	err := app.RunContext(ctx, args)
	if err == nil && unknown {
		return exitUsage
	}
	if err != nil {
		msg := err.Error()
		msg = strings.ReplaceAll(msg, errUsage.Error()+": ", "")
		msg = strings.ReplaceAll(msg, publisher.ErrUsage.Error()+": ", "")
		fmt.Fprintf(stderr, "bcpublish: %s\n", strings.ReplaceAll(msg, "\n", " "))
	}
	return exitCode(err)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	onUsage := func(c *cli.Context, err error, _ bool) error { return usageErr("%v", err) }
	app := &cli.App{
		Name:                 "bcpublish",
		Usage:                "publish code-signed BeckmanConnect releases into a TUF repository",
		Version:              version,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: false,
		HideHelpCommand:      true,
		OnUsageError:         onUsage,
		ExitErrHandler:       func(*cli.Context, error) {},
		Commands: []*cli.Command{
			keysCommand(),
			initCommand(),
			releaseCommand(),
			policyCommand(),
			trustCommand(),
			rootCommand(),
			copyCommand(),
			refreshCommand(),
			statusCommand(),
			serveCommand(),
			codesignCommand(),
		},
	}
	setUsageHandler(app.Commands, onUsage)
	addRoleKeyFlags(app.Commands)
	addS3Flags(app.Commands)
	return app
}

// retrying runs a publish, again after losing a race with another
// publisher, up to --retry times.
func retrying(c *cli.Context, fn func() error) error {
	return publisher.Retry(c.Context, c.Int("retry"), fn)
}

// addRoleKeyFlags gives every command that takes --keys the per-role
// --ROLE-key references too.
func addRoleKeyFlags(cmds []*cli.Command) {
	for _, c := range cmds {
		for _, f := range c.Flags {
			if f.Names()[0] == "keys" {
				c.Flags = append(c.Flags, roleKeyFlags()...)
				if c.Name != "init" {
					c.Flags = append(c.Flags, &cli.IntFlag{Name: "retry", Usage: "if another publisher wins a race, reload and try again up to `N` times", EnvVars: []string{"BCPUBLISH_RETRY"}})
				}
				break
			}
		}
		addRoleKeyFlags(c.Subcommands)
	}
}

func setUsageHandler(cmds []*cli.Command, h cli.OnUsageErrorFunc) {
	for _, c := range cmds {
		c.OnUsageError = h
		setUsageHandler(c.Subcommands, h)
	}
}

// Shared flags.
func repoFlag() cli.Flag {
	return &cli.StringFlag{Name: "repo", Usage: "repository `DIR`", EnvVars: []string{"BCPUBLISH_REPO"}}
}

func keysFlag() cli.Flag {
	return &cli.StringFlag{Name: "keys", Usage: "role key `DIR` (root.key, targets.key, …)", EnvVars: []string{"BCPUBLISH_KEYS"}}
}

func trustFlag() cli.Flag {
	return &cli.StringFlag{Name: "trust", Usage: "code-signing trust `DIR` (roots/, publishers)", EnvVars: []string{"BCPUBLISH_TRUST"}}
}

// codesignFlags let a command sign what it publishes for the consent gate
// (a gate manifest, a device policy) with the publisher's code-signing key.
func codesignFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "codesign-cert", Usage: "code-signing certificate `CHAIN.pem` (leaf first) to sign the consent gate's inputs here", EnvVars: []string{"BCPUBLISH_CODESIGN_CERT"}},
		&cli.StringFlag{Name: "codesign-key", Usage: "the code-signing leaf's private `KEY.pem`", EnvVars: []string{"BCPUBLISH_CODESIGN_KEY"}},
	}
}

// codeSigner is the signer the codesign flags name, or nil.
func codeSigner(c *cli.Context) (publisher.CodeSigner, error) {
	cert, key := c.String("codesign-cert"), c.String("codesign-key")
	if cert == "" && key == "" {
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, usageErr("--codesign-cert and --codesign-key go together")
	}
	return publisher.CodeSignerFromFiles(cert, key)
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON for scripts", EnvVars: []string{"BCPUBLISH_JSON"}}
}

func need(c *cli.Context, names ...string) error {
	for _, n := range names {
		if n == "keys" && hasRoleKeyRefs(c) {
			continue
		}
		if c.String(n) == "" {
			return usageErr("--%s is required", n)
		}
	}
	if c.Args().Len() > 0 {
		return usageErr("unexpected argument %q", c.Args().First())
	}
	return nil
}

// openForPublish checks the flags a publish needs (--repo, keys, and
// required), opens the repository and loads the online keys (targets,
// snapshot, timestamp).
func openForPublish(c *cli.Context, required ...string) (publisher.Store, repo.Keys, error) {
	return openWithKeys(c, []string{repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp}, required...)
}

// openWithKeys is openForPublish with the roles whose keys to load.
func openWithKeys(c *cli.Context, roles []string, required ...string) (publisher.Store, repo.Keys, error) {
	if err := need(c, append([]string{"repo", "keys"}, required...)...); err != nil {
		return nil, nil, err
	}
	s, err := openStore(c)
	if err != nil {
		return nil, nil, err
	}
	keys, err := loadKeys(c, roles...)
	if err != nil {
		return nil, nil, err
	}
	return s, keys, nil
}

func hasRoleKeyRefs(c *cli.Context) bool {
	for _, role := range repo.TopLevelRoles {
		if len(c.StringSlice(role+"-key")) > 0 {
			return true
		}
	}
	return false
}

func openStore(c *cli.Context) (publisher.Store, error) {
	return openStoreFlag(c, "repo")
}

// s3Flags configure an s3:// repository; the standard AWS environment
// (AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT_URL_S3, …) applies too.
func s3Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "s3-endpoint", Usage: "S3-compatible endpoint `URL` (default: AWS, or AWS_ENDPOINT_URL_S3)", EnvVars: []string{"BCPUBLISH_S3_ENDPOINT"}},
		&cli.StringFlag{Name: "s3-region", Usage: "S3 `REGION` (default: AWS_REGION or the profile's)", EnvVars: []string{"BCPUBLISH_S3_REGION"}},
		&cli.BoolFlag{Name: "s3-path-style", Usage: "path-style S3 addressing (most S3-compatible servers)", EnvVars: []string{"BCPUBLISH_S3_PATH_STYLE"}},
		&cli.StringFlag{Name: "sse", Value: "AES256", Usage: "server-side encryption of uploads: AES256 or aws:kms", EnvVars: []string{"BCPUBLISH_SSE"}},
		&cli.StringFlag{Name: "sse-kms-key-id", Usage: "KMS `KEY` for --sse aws:kms (default: the bucket's)", EnvVars: []string{"BCPUBLISH_SSE_KMS_KEY_ID"}},
	}
}

// addS3Flags gives every command that takes a repository the S3 options.
func addS3Flags(cmds []*cli.Command) {
	for _, c := range cmds {
		for _, f := range c.Flags {
			if n := f.Names()[0]; n == "repo" || n == "from" && c.Name == "copy" {
				c.Flags = append(c.Flags, s3Flags()...)
				break
			}
		}
		addS3Flags(c.Subcommands)
	}
}

func openStoreFlag(c *cli.Context, flag string) (publisher.Store, error) {
	s, err := publisher.OpenStore(c.Context, c.String(flag), publisher.S3Options{
		Endpoint: c.String("s3-endpoint"), Region: c.String("s3-region"), PathStyle: c.Bool("s3-path-style"),
		SSE: c.String("sse"), SSEKMSKeyID: c.String("sse-kms-key-id"),
	})
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return s, nil
}
