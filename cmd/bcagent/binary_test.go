package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// bannedModules must not be linked into the agent: a second CLI framework
// (cobra, pflag), a keyring and D-Bus, OpenPGP, all of which relic's
// x509tools and certloader used to pull in, and the AWS SDK (KMS signing is
// the publisher's business).
var bannedModules = []string{
	"github.com/spf13/cobra",
	"github.com/spf13/pflag",
	"github.com/zalando/go-keyring",
	"github.com/godbus/dbus",
	"github.com/ProtonMail/go-crypto",
	"github.com/cloudflare/circl",
	"github.com/aws/",
	"github.com/sigstore/sigstore/pkg/signature/kms",
}

// Issue 15 asks for an agent under 10 MiB stripped. It is not there yet
// (12.6 MiB for linux, 13.1 MiB for windows): urfave/cli renders help with
// text/template, whose reflective method lookups make the linker keep every
// exported method of every reachable type (about 1.8 MB), and go-tuf's
// metadata package needs sigstore's signature package, which links the
// protobuf runtime (about 1.3 MB). maxAgentSize, below both sizes before
// relic was trimmed (13.5 and 13.7 MiB), keeps what was won from creeping
// back; lower it when the agent shrinks.
const (
	agentSizeGoal = 10 << 20
	maxAgentSize  = 13<<20 + 512<<10
)

// TestBinaryDependencies builds bcagent the way the Makefile does (stripped)
// for linux-amd64 and windows-amd64 and checks its size and, with
// go version -m, the modules it links.
func TestBinaryDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent twice; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	for _, target := range []struct{ goos, goarch string }{{"linux", "amd64"}, {"windows", "amd64"}} {
		t.Run(target.goos+"-"+target.goarch, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "bcagent")
			if target.goos == "windows" {
				out += ".exe"
			}
			build := exec.Command(gobin, "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
			build.Env = append(os.Environ(), "GOOS="+target.goos, "GOARCH="+target.goarch, "CGO_ENABLED=0", "GOFLAGS=")
			if b, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, b)
			}
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("stripped size %s (goal %s)", mib(fi.Size()), mib(agentSizeGoal))
			if fi.Size() > maxAgentSize {
				t.Errorf("bcagent for %s/%s is %s stripped, want at most %s", target.goos, target.goarch, mib(fi.Size()), mib(maxAgentSize))
			}

			mods, err := exec.Command(gobin, "version", "-m", out).Output()
			if err != nil {
				t.Fatalf("go version -m: %v", err)
			}
			sc := bufio.NewScanner(bytes.NewReader(mods))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) < 2 || (f[0] != "dep" && f[0] != "=>") {
					continue
				}
				for _, bad := range bannedModules {
					if strings.HasPrefix(f[1], bad) {
						t.Errorf("bcagent links %s (%s)", f[1], bad)
					}
				}
			}
			if !bytes.Contains(mods, []byte("github.com/urfave/cli/v2")) {
				t.Errorf("go version -m shows no urfave/cli; is this the agent?\n%s", mods)
			}
		})
	}
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
