// Command conformance is the adapter between the public TUF conformance
// suite (github.com/theupdateframework/tuf-conformance) and the agent's own
// TUF layer: it speaks the suite's client protocol (CLIENT-CLI.md) through
// client.TUF, which is the refresh, delegation walk and streaming
// download the agent itself uses, not a bare go-tuf client.
//
//	conformance --metadata-dir D init TRUSTED_ROOT
//	conformance --metadata-dir D --metadata-url U refresh
//	conformance --metadata-dir D --metadata-url U --target-name P [--target-name P2 ...] \
//	        --target-base-url T --target-dir TD download
//
// Exit code 0 on success, 1 on any failure (a command line it cannot read
// included), as the protocol asks. `make conformance` builds it and runs
// the suite; see docs/conformance.md.
//
// Time: the suite runs the adapter under faketime for its expiry tests.
// libfaketime changes what libc's clock calls return, and Go reads the
// clock without libc, so the adapter asks `date +%s` (which does go
// through libc) for the time and hands it to client.TUF as the time
// expiry is judged at.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
)

// maxRootFile bounds the trusted root the suite hands to init.
const maxRootFile = 1 << 20

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

type names []string

func (n *names) String() string     { return strings.Join(*n, ",") }
func (n *names) Set(v string) error { *n = append(*n, v); return nil }

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		metadataDir = fs.String("metadata-dir", "", "trusted metadata directory")
		metadataURL = fs.String("metadata-url", "", "the repository's metadata URL")
		targetURL   = fs.String("target-base-url", "", "the repository's targets URL")
		targetDir   = fs.String("target-dir", "", "where downloaded targets go")
		targets     names
	)
	fs.Var(&targets, "target-name", "a target path to download (repeatable, in order)")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "conformance: give a command: init, refresh or download")
		return 1
	}
	var err error
	switch cmd := fs.Arg(0); {
	case cmd == "init" && fs.NArg() == 2:
		err = initRoot(*metadataDir, fs.Arg(1))
	case cmd == "refresh" && fs.NArg() == 1:
		var t *client.TUF
		if t, err = open(ctx, *metadataDir, *metadataURL, ""); err == nil {
			err = t.Refresh(ctx)
		}
	case cmd == "download" && fs.NArg() == 1:
		err = download(ctx, *metadataDir, *metadataURL, *targetURL, *targetDir, targets)
	default:
		fmt.Fprintf(stderr, "conformance: unknown command line %q (want init TRUSTED_ROOT, refresh or download)\n", fs.Args())
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "conformance %s: %v\n", fs.Arg(0), err)
		return 1
	}
	return 0
}

func initRoot(dir, rootFile string) error {
	f, err := os.Open(rootFile)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := io.ReadAll(io.LimitReader(f, maxRootFile+1))
	if err != nil {
		return err
	}
	if len(root) > maxRootFile {
		return fmt.Errorf("%s is larger than %d bytes", rootFile, maxRootFile)
	}
	return client.InitTUF(dir, root)
}

func open(ctx context.Context, dir, metadataURL, targetURL string) (*client.TUF, error) {
	now, err := suiteTime(ctx)
	if err != nil {
		return nil, err
	}
	return client.NewTUF(client.TUFOptions{MetadataDir: dir, MetadataURL: metadataURL, TargetsURL: targetURL, Now: now})
}

// download refreshes once and downloads each target in order with the
// same client, stopping at the first failure.
func download(ctx context.Context, dir, metadataURL, targetURL, targetDir string, targets []string) error {
	if len(targets) == 0 || targetURL == "" || targetDir == "" {
		return errors.New("download needs --target-name, --target-base-url and --target-dir")
	}
	t, err := open(ctx, dir, metadataURL, targetURL)
	if err != nil {
		return err
	}
	if err := t.Refresh(ctx); err != nil {
		return err
	}
	for _, name := range targets {
		if _, err := t.Download(ctx, name, targetDir); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// suiteTime is the time as libc sees it (faked under faketime): `date +%s`.
func suiteTime(ctx context.Context) (time.Time, error) {
	out, err := exec.CommandContext(ctx, "date", "+%s").Output()
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the time with date +%%s: %w", err)
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("date +%%s printed %q", out)
	}
	return time.Unix(secs, 0).UTC(), nil
}
