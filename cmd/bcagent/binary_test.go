package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// bannedAgentPackages must not be linked into the agent either, found with
// go list -deps. text/template (and html/template) calls reflect's
// MethodByName with a name it reads at run time; once that is reachable the
// linker keeps every exported method of every reachable type, which cost
// the agent 2.2 MB. urfave/cli renders help with it, so the agent links the
// copy in internal/third_party/urfave-cli, which renders the same help
// without it. The protobuf runtime came with sigstore's signature package,
// which go-tuf's metadata package imports, through two enums of
// github.com/sigstore/protobuf-specs; go.mod replaces that module with
// internal/third_party/protobuf-specs, which keeps only the enums (2.1 MB).
var bannedAgentPackages = []string{
	"text/template",
	"html/template",
	"google.golang.org/protobuf/",
	"google.golang.org/genproto/",
	"github.com/russross/blackfriday/",
	"github.com/cpuguy83/go-md2man/",
}

// replacedModules must come from this repository's copies (go.mod's
// replace directives), or the agent grows back past 10 MiB.
var replacedModules = map[string]string{
	"github.com/urfave/cli/v2":           "./internal/third_party/urfave-cli",
	"github.com/sigstore/protobuf-specs": "./internal/third_party/protobuf-specs",
}

// Issue 15 asks for an agent under 10 MiB stripped: it is 9.0 MiB for
// linux and 9.4 MiB for windows (docs/performance.md).
const maxAgentSize = 10 << 20

// TestBinaryDependencies builds bcagent the way the Makefile does (stripped)
// for linux-amd64 and windows-amd64 and checks its size, with
// go version -m the modules it links, and with go list -deps its packages.
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
			t.Logf("stripped size %s", mib(fi.Size()))
			if fi.Size() > maxAgentSize {
				t.Errorf("bcagent for %s/%s is %s stripped, want at most %s", target.goos, target.goarch, mib(fi.Size()), mib(maxAgentSize))
			}

			mods, err := exec.Command(gobin, "version", "-m", out).Output()
			if err != nil {
				t.Fatalf("go version -m: %v", err)
			}
			sc := bufio.NewScanner(bytes.NewReader(mods))
			replaced := map[string]string{}
			var dep string
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) < 2 || (f[0] != "dep" && f[0] != "=>") {
					continue
				}
				if f[0] == "dep" {
					dep = f[1]
				} else {
					replaced[dep] = f[1]
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
			for mod, want := range replacedModules {
				if got := replaced[mod]; got != want {
					t.Errorf("bcagent links %s from %q, want the copy in %s (go.mod's replace)", mod, got, want)
				}
			}

			list := exec.Command(gobin, "list", "-deps", ".")
			list.Env = build.Env
			pkgs, err := list.Output()
			if err != nil {
				t.Fatalf("go list -deps: %v", err)
			}
			reported := map[string]bool{}
			for _, p := range strings.Fields(string(pkgs)) {
				for _, bad := range bannedAgentPackages {
					if (p == bad || strings.HasPrefix(p, bad)) && !reported[bad] {
						reported[bad] = true
						t.Errorf("bcagent links package %s (%s)", p, bad)
					}
				}
			}
		})
	}
}

func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// bannedClientPackages must never be among package client's dependencies,
// its tests' included (docs/design.md: client never imports publisher or
// the AWS SDK). Its tests drive the publisher through the bcpublish
// command instead (client/flow_harness_test.go).
var bannedClientPackages = []string{
	"github.com/beckmanconnect/bcupdate/publisher",
	"github.com/aws/",
	"github.com/sigstore/sigstore/pkg/signature/kms",
}

// TestClientDependencies lists package client's dependencies with go list
// -deps, and with -test those of its tests, and wants none of
// bannedClientPackages among them.
func TestClientDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	const client = "github.com/beckmanconnect/bcupdate/client"
	for _, args := range [][]string{{"list", "-deps", client}, {"list", "-test", "-deps", client}} {
		out, err := exec.Command(gobin, args...).Output()
		if err != nil {
			t.Fatalf("go %s: %v", strings.Join(args, " "), err)
		}
		pkgs := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			// -test names a package built for a test as
			// "path [path.test]".
			if f := strings.Fields(line); len(f) > 0 {
				pkgs[f[0]] = true
			}
		}
		if !pkgs[client] {
			t.Fatalf("go %s does not list %s:\n%s", strings.Join(args, " "), client, out)
		}
		for _, bad := range bannedClientPackages {
			var found []string
			for p := range pkgs {
				if strings.HasPrefix(p, bad) {
					found = append(found, p)
				}
			}
			if len(found) > 0 {
				slices.Sort(found)
				t.Errorf("go %s: client depends on %d packages of %s: %s", strings.Join(args, " "), len(found), bad, strings.Join(found, " "))
			}
		}
	}
}
