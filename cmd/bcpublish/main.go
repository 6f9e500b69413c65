// Command bcpublish is the release engineers' CLI: role keys, repository
// init, releases, status, serving and code signing. It only maps flags to
// the publisher package and errors to exit codes.
//
// Each command is a constructor that declares its flags, an options
// struct and a runX(ctx, g, opts) function that tests may call directly.
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

	"github.com/beckmanconnect/bcupdate/internal/cliutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// program is how bcpublish reports; a bad target path is a usage error.
var program = cliutil.Program{Name: "bcpublish", Usage: []error{repo.ErrBadPath}}

// exitCode maps an error to the exit code (docs/design.md).
func exitCode(err error) int { return cliutil.ExitCode(err, program.Usage...) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the exit code; tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return program.Run(ctx, newApp(stdout, stderr), args, stderr)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "bcpublish",
		Usage:                "publish code-signed BeckmanConnect releases into a TUF repository",
		Version:              version,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: false,
		HideHelpCommand:      true,
		OnUsageError:         cliutil.OnUsageError,
		ExitErrHandler:       func(*cli.Context, error) {},
		Commands: []*cli.Command{
			keysCommand(),
			initCommand(),
			releaseCommand(),
			policyCommand(),
			trustCommand(),
			rootCommand(),
			copyCommand(),
			mirrorCommand(),
			bundleCommand(),
			refreshCommand(),
			statusCommand(),
			serveCommand(),
			codesignCommand(),
		},
	}
	markRequired(app.Commands, "")
	return cliutil.Standard(app, "BCPUBLISH")
}

// requiredFlags are the flags each command cannot run without: its run
// function checks them (need, naming every missing one at once) and
// --help marks them; TestHelpConventions holds the two together.
var requiredFlags = map[string][]string{
	"keys generate":   {"out"},
	"init":            {"repo", "keys"},
	"release add":     {"repo", "keys", "trust", "component", "version", "platform", "file"},
	"release gate":    {"component", "version", "platform", "file", "out"},
	"release list":    {"repo"},
	"release promote": {"repo", "keys", "component", "platform", "from", "to"},
	"release yank":    {"repo", "keys", "component", "platform", "version", "reason"},
	"policy set":      {"repo", "keys", "file", "trust"},
	"trust add-crl":   {"repo", "keys", "crl"},
	"root stage":      {"repo", "out"},
	"root rotate":     {"repo"},
	"copy":            {"from", "to"},
	"mirror":          {"from", "to", "root"},
	"bundle create":   {"repo", "keys", "out"},
	"refresh":         {"repo", "keys"},
	"status":          {"repo"},
	"serve":           {"repo"},
	"codesign sign":   {"cert", "key", "file"},
	"codesign verify": {"trust", "file"},
}

// markRequired marks requiredFlags in the usage of each command's flags.
// --keys may be replaced by the --ROLE-key flags, and says so.
func markRequired(cmds []*cli.Command, prefix string) {
	for _, c := range cmds {
		path := strings.TrimSpace(prefix + " " + c.Name)
		markRequired(c.Subcommands, path)
		for _, name := range requiredFlags[path] {
			for _, f := range c.Flags {
				sf, ok := f.(*cli.StringFlag)
				if !ok || sf.Name != name {
					continue
				}
				if name == "keys" {
					sf.Usage += " (required, or the --ROLE-key flags)"
				} else {
					cliutil.Req(sf)
				}
			}
		}
	}
}

// globalOptions are what every command sees: its output and the log flags.
type globalOptions struct {
	Stdout, Stderr io.Writer
	Log            cliutil.LogOptions
}

func globals(c *cli.Context) *globalOptions {
	return &globalOptions{Stdout: c.App.Writer, Stderr: c.App.ErrWriter, Log: cliutil.LogOptionsOf(c)}
}

// storeOptions name a repository: a directory or s3://bucket/prefix, with
// the S3 options (s3Flags).
type storeOptions struct {
	Flag     string // the flag that names it: repo, or copy's from and to
	Location string
	S3       publisher.S3Options
}

// storeOpts reads the repository flag and the S3 options.
func storeOpts(c *cli.Context, flag string) storeOptions {
	return storeOptions{Flag: flag, Location: c.String(flag), S3: publisher.S3Options{
		Endpoint: c.String("s3-endpoint"), Region: c.String("s3-region"), PathStyle: c.Bool("s3-path-style"),
		SSE: c.String("sse"), SSEKMSKeyID: c.String("sse-kms-key-id"),
	}}
}

func (o storeOptions) open(ctx context.Context) (publisher.Store, error) {
	s, err := publisher.OpenStore(ctx, o.Location, o.S3)
	if err != nil {
		return nil, cliutil.Usagef(o.Flag, "%w", err)
	}
	return s, nil
}

// keyOptions are --keys DIR, the per-role --ROLE-key references that
// override it, and --retry (roleKeyFlags).
type keyOptions struct {
	Dir   string
	Refs  publisher.KeyRefs
	Retry int
}

func keyOpts(c *cli.Context) keyOptions {
	refs := publisher.KeyRefs{}
	for _, role := range repo.TopLevelRoles {
		refs[role] = c.StringSlice(role + "-key")
	}
	return keyOptions{Dir: c.String("keys"), Refs: refs, Retry: c.Int("retry")}
}

// given is what counts as --keys for "--keys is required": the directory,
// or any per-role reference.
func (k keyOptions) given() string {
	for _, role := range repo.TopLevelRoles {
		if len(k.Refs[role]) > 0 {
			return "refs"
		}
	}
	return k.Dir
}

// load loads the roles' keys from --ROLE-key references or --keys DIR.
func (k keyOptions) load(ctx context.Context, roles ...string) (repo.Keys, error) {
	return publisher.LoadKeysRefs(ctx, k.Dir, k.Refs, roles...)
}

// retrying runs a publish, again after losing a race with another
// publisher, up to --retry times; a key the root does not list is
// explained.
func (k keyOptions) retrying(ctx context.Context, fn func() error) error {
	if k.Retry < 0 {
		return cliutil.Usagef("retry", "--retry %d: want 0 or more", k.Retry)
	}
	return k.explain(publisher.Retry(ctx, k.Retry, fn))
}

// explain says, of a role key the repository's root does not list, which
// flag gave it and what to check; other errors pass unchanged.
func (k keyOptions) explain(err error) error {
	var wk *repo.WrongKeyError
	if !errors.As(err, &wk) {
		return err
	}
	role := wk.Role
	if refs := k.Refs[role]; len(refs) > 0 {
		return fmt.Errorf("--%s-key %s does not match the repository: %w; give this repository's %s key", role, strings.Join(refs, ","), err, role)
	}
	return fmt.Errorf("--keys %s: %s.key does not match the repository: %w; check that --keys is this repository's key directory, or give the %s key with --%s-key",
		k.Dir, role, err, role, role)
}

// need is the usage error naming every empty flag of the name, value
// pairs at once, then for any argument.
func need(args []string, nameValues ...string) error {
	var names, values []string
	for i := 0; i+1 < len(nameValues); i += 2 {
		names, values = append(names, nameValues[i]), append(values, nameValues[i+1])
	}
	if err := cliutil.Required(names, values...); err != nil {
		return err
	}
	return cliutil.NoArgs(args)
}

// openWithKeys checks the flags a publish needs (--repo, keys, and the
// required name, value pairs), opens the repository and loads the roles'
// keys.
func openWithKeys(ctx context.Context, st storeOptions, k keyOptions, roles []string, args []string, required ...string) (publisher.Store, repo.Keys, error) {
	if err := need(args, append([]string{"repo", st.Location, "keys", k.given()}, required...)...); err != nil {
		return nil, nil, err
	}
	s, err := st.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	keys, err := k.load(ctx, roles...)
	if err != nil {
		return nil, nil, err
	}
	return s, keys, nil
}

// openForPublish is openWithKeys with the online keys (targets, snapshot,
// timestamp).
func openForPublish(ctx context.Context, st storeOptions, k keyOptions, args []string, required ...string) (publisher.Store, repo.Keys, error) {
	return openWithKeys(ctx, st, k, []string{repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp}, args, required...)
}

// Shared flags.
func repoFlag() cli.Flag {
	return &cli.StringFlag{Name: "repo", Usage: "repository `REPO`: a directory or s3://bucket/prefix", EnvVars: []string{"BCPUBLISH_REPO"}}
}

func keysFlag() cli.Flag {
	return &cli.StringFlag{Name: "keys", Usage: "role key `DIR` (root.key, targets.key, …)", EnvVars: []string{"BCPUBLISH_KEYS"}}
}

func trustFlag() cli.Flag {
	return &cli.StringFlag{Name: "trust", Usage: "code-signing trust `DIR` (roots/, publishers)", EnvVars: []string{"BCPUBLISH_TRUST"}}
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON for scripts", EnvVars: []string{"BCPUBLISH_JSON"}}
}

// onlineRoles are the roles a publish signs with: targets, snapshot and
// timestamp.
var onlineRoles = []string{repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp}

// withKeys is a command's flags followed by the --ROLE-key references of
// the roles it signs with (every command that takes --keys has them) and,
// if retry, --retry.
func withKeys(retry bool, roles []string, flags ...cli.Flag) []cli.Flag {
	flags = append(flags, roleKeyFlags(roles)...)
	if retry {
		flags = append(flags, &cli.IntFlag{Name: "retry", Usage: "if another publisher wins a race, reload and try again up to `N` times", EnvVars: []string{"BCPUBLISH_RETRY"}})
	}
	return flags
}

// withS3 is a command's flags followed by the S3 options that reach a
// repository (every command that takes one has them).
func withS3(flags ...cli.Flag) []cli.Flag { return append(flags, s3Flags()...) }

// withS3Write is withS3 and the server-side encryption of uploads, for the
// commands that write to the repository.
func withS3Write(flags ...cli.Flag) []cli.Flag { return append(withS3(flags...), s3WriteFlags()...) }

// codesignFlags let a command sign what it publishes for the consent gate
// (a gate manifest, a device policy) with the publisher's code-signing key.
func codesignFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "codesign-cert", Usage: "code-signing certificate `CHAIN.pem` (leaf first) to sign the consent gate's inputs here", EnvVars: []string{"BCPUBLISH_CODESIGN_CERT"}},
		&cli.StringFlag{Name: "codesign-key", Usage: "the code-signing leaf's private `KEY.pem`", EnvVars: []string{"BCPUBLISH_CODESIGN_KEY"}},
	}
}

// codesignOptions are the codesign flags.
type codesignOptions struct{ Cert, Key string }

func codesignOpts(c *cli.Context) codesignOptions {
	return codesignOptions{Cert: c.String("codesign-cert"), Key: c.String("codesign-key")}
}

// signer is the signer the codesign flags name, or nil.
func (o codesignOptions) signer() (publisher.CodeSigner, error) {
	if o.Cert == "" && o.Key == "" {
		return nil, nil
	}
	if o.Cert == "" || o.Key == "" {
		flag := "codesign-cert"
		if o.Cert != "" {
			flag = "codesign-key"
		}
		return nil, cliutil.Usagef(flag, "--codesign-cert and --codesign-key go together")
	}
	return publisher.CodeSignerFromFiles(o.Cert, o.Key)
}

// s3Flags configure an s3:// repository; the standard AWS environment
// (AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT_URL_S3, …) applies too.
func s3Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "s3-endpoint", Usage: "S3-compatible endpoint `URL` (default: AWS, or AWS_ENDPOINT_URL_S3)", EnvVars: []string{"BCPUBLISH_S3_ENDPOINT"}},
		&cli.StringFlag{Name: "s3-region", Usage: "S3 `REGION` (default: AWS_REGION or the profile's)", EnvVars: []string{"BCPUBLISH_S3_REGION"}},
		&cli.BoolFlag{Name: "s3-path-style", Usage: "path-style S3 addressing (most S3-compatible servers)", EnvVars: []string{"BCPUBLISH_S3_PATH_STYLE"}},
	}
}

// s3WriteFlags are the S3 options of uploads: only commands that write to
// the repository have them.
func s3WriteFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "sse", Value: "AES256", Usage: "server-side encryption of uploads, `MODE`: AES256 or aws:kms", EnvVars: []string{"BCPUBLISH_SSE"}},
		&cli.StringFlag{Name: "sse-kms-key-id", Usage: "KMS `KEY` for --sse aws:kms (default: the bucket's)", EnvVars: []string{"BCPUBLISH_SSE_KMS_KEY_ID"}},
	}
}

// roleKeyFlags take a key by reference for each of roles, overriding
// --keys.
func roleKeyFlags(roles []string) []cli.Flag {
	var out []cli.Flag
	for _, role := range roles {
		out = append(out, &cli.StringSliceFlag{Name: role + "-key", Usage: "the " + role + " key: a `FILE`, file://… or a KMS URI such as awskms:///arn:… (repeatable; overrides --keys)",
			EnvVars: []string{"BCPUBLISH_" + strings.ToUpper(role) + "_KEY"}})
	}
	return out
}
