package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

// TestRotateEveryRole: on a flat and on a hashed-bin repository (init
// --bins), the keys of root, targets, snapshot and timestamp are rotated
// one at a time and then all at once, with `root rotate`'s code
// (publisher.RotateRoot) or a staged root (`root stage --from`, `root
// sign`, `root publish`). After each rotation a release is published and
// the agent that started at root 1 installs it, status verifies the
// repository, and python-tuf's reference client (a second, independent
// client) refreshes and downloads the release. At the end a new agent
// shipped with root 1 follows the whole chain.
func TestRotateEveryRole(t *testing.T) {
	py := findPythonTUF(t)
	for _, bins := range []int{0, 4} {
		t.Run(fmt.Sprintf("bins=%d", bins), func(t *testing.T) {
			ctx := context.Background()
			e := newEnvBins(t, bins, nil)
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			pyDir := py.init(t, e)
			kdir := t.TempDir()
			steps := []struct {
				name  string
				roles []string
			}{
				{"root", []string{repo.RoleRoot}},
				{"targets", []string{repo.RoleTargets}},
				{"snapshot", []string{repo.RoleSnapshot}},
				{"timestamp", []string{repo.RoleTimestamp}},
				{"all at once", repo.TopLevelRoles},
			}
			for i, step := range steps {
				now := time.Now()
				next := repo.Keys{}
				for role, k := range e.keys {
					next[role] = k
				}
				var changes []publisher.RootChange
				for _, role := range step.roles {
					s, pub := newKey(t, kdir, fmt.Sprintf("%s-%d", role, i))
					changes = append(changes, publisher.RootChange{Role: role, Add: []string{pub}, Remove: []string{keyIDOf(t, e.keys[role][0])}})
					next[role] = []signature.Signer{s}
				}
				// The old root's threshold and the new root's own.
				rootSigners := append(append([]signature.Signer{}, e.keys[repo.RoleRoot]...), next[repo.RoleRoot]...)
				if len(step.roles) == 1 && step.roles[0] != repo.RoleRoot {
					rootSigners = e.keys[repo.RoleRoot]
				}
				if len(changes) == 1 {
					if _, err := publisher.RotateRoot(ctx, e.store, changes[0], rootSigners, next, now); err != nil {
						t.Fatalf("rotate %s: %v", step.name, err)
					}
				} else {
					staged := filepath.Join(t.TempDir(), "root.json")
					from := ""
					for _, c := range changes {
						if _, err := publisher.StageRoot(ctx, e.store, from, c, staged, now); err != nil {
							t.Fatalf("stage %s: %v", c.Role, err)
						}
						from = staged
					}
					for _, s := range rootSigners {
						if _, _, err := publisher.SignRootFile(staged, s); err != nil {
							t.Fatal(err)
						}
					}
					if _, err := publisher.PublishRoot(ctx, e.store, staged, next, now); err != nil {
						t.Fatalf("publish the root rotating %s: %v", step.name, err)
					}
				}
				e.keys = next
				if st, err := publisher.Status(ctx, e.store, now, 0); err != nil {
					t.Fatalf("status after rotating %s: %v", step.name, err)
				} else if len(st.Warnings) != 0 {
					t.Fatalf("status after rotating %s warns: %v", step.name, st.Warnings)
				}
				v := fmt.Sprintf("1.%d.0", i+1)
				res := e.publish(v)
				e.mustInstall(v)
				py.check(t, e, pyDir, step.name, res.Path)
			}
			if got := e.loadRepo().Root.Signed.Version; got != 1+int64(len(steps)) {
				t.Fatalf("root is v%d after %d rotations", got, len(steps))
			}
			// A new agent shipped with root 1 follows the whole chain.
			other := e.secondAgent(t, "INST-7777")
			other.mustInstall(fmt.Sprintf("1.%d.0", len(steps)))
			// And so does a fresh python-tuf client.
			py.check(t, e, py.init(t, e), "a client shipped with root 1", e.publish("1.9.0").Path)
		})
	}
}

// pythonTUF runs python-tuf's ngclient, the TUF reference client, as a
// second client of the repository. The copy beside the tuf-conformance
// suite is used ($TUF_CONFORMANCE, default ../shared/tuf-conformance beside
// the module), else a python-tuf installed with python3 (Debian's
// python3-tuf); it needs python3 with cryptography and requests.
type pythonTUF struct {
	skip string // why the check is skipped ("" if it runs)
	// noModules: no python3 has cryptography and requests, which make
	// deps installs (a failure with BCUPDATE_REQUIRE_TOOLS=1); otherwise
	// only python-tuf is missing (the tuf-conformance folder).
	noModules bool
	python    string
	env       []string
	script    string
}

const ngclientScript = `
import sys
from tuf.ngclient import Updater
md_dir, url, target, out = sys.argv[1:5]
u = Updater(metadata_dir=md_dir, metadata_base_url=url + "/metadata/",
            target_dir=out, target_base_url=url + "/targets/")
u.refresh()
info = u.get_targetinfo(target)
if info is None:
    sys.exit("python-tuf: no target " + target)
print(u.download_target(info))
`

func findPythonTUF(t *testing.T) *pythonTUF {
	t.Helper()
	py := &pythonTUF{}
	suite := os.Getenv("TUF_CONFORMANCE")
	if suite == "" {
		suite = filepath.Join("..", "..", "..", "shared", "tuf-conformance")
	}
	env := os.Environ()
	if tp, err := filepath.Abs(filepath.Join(suite, "third_party")); err == nil {
		if _, err := os.Stat(filepath.Join(tp, "python-tuf", "tuf", "ngclient")); err == nil {
			env = append(env, "PYTHONPATH="+filepath.Join(tp, "python-tuf")+string(os.PathListSeparator)+filepath.Join(tp, "securesystemslib"))
		}
	}
	py.env = append(env, "PYTHONDONTWRITEBYTECODE=1")
	// The python3 on PATH, else Debian's (python3-cryptography,
	// python3-requests).
	var tried []string
	hasModules := false
	seen := map[string]bool{}
	for _, name := range []string{"python3", "/usr/bin/python3"} {
		python, err := exec.LookPath(name)
		if err != nil {
			tried = append(tried, name+": not found")
			continue
		}
		if real, err := filepath.EvalSymlinks(python); err == nil && seen[real] {
			continue
		} else {
			seen[real] = true
		}
		imports := func(mods string) bool {
			cmd := exec.Command(python, "-c", "import "+mods)
			cmd.Env = py.env
			out, err := cmd.CombinedOutput()
			if err != nil {
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				tried = append(tried, python+": "+lines[len(lines)-1])
			}
			return err == nil
		}
		if !imports("cryptography, requests") {
			continue
		}
		hasModules = true
		if !imports("tuf.ngclient") {
			continue
		}
		py.python = python
		break
	}
	switch {
	case py.python != "":
	case !hasModules:
		py.noModules = true
		py.skip = fmt.Sprintf("no python3 imports cryptography and requests (%s): run make deps (python3-cryptography, python3-requests)",
			strings.Join(tried, "; "))
		return py
	default:
		py.skip = fmt.Sprintf("no python3 can import python-tuf's ngclient (%s): keep the tuf-conformance folder beside the module or set TUF_CONFORMANCE (or install python3-tuf)",
			strings.Join(tried, "; "))
		return py
	}
	py.script = filepath.Join(t.TempDir(), "ngclient.py")
	if err := os.WriteFile(py.script, []byte(ngclientScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return py
}

// init makes a python-tuf client state that trusts the repository's
// root 1, as a client shipped before any rotation.
func (py *pythonTUF) init(t *testing.T, e *env) string {
	t.Helper()
	dir := t.TempDir()
	if py.skip != "" {
		return dir
	}
	root, err := os.ReadFile(filepath.Join(e.store.Dir, "metadata", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "metadata"), 0o700)
	os.MkdirAll(filepath.Join(dir, "targets"), 0o700)
	if err := os.WriteFile(filepath.Join(dir, "metadata", "root.json"), root, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// check has python-tuf refresh from the repository and download target.
func (py *pythonTUF) check(t *testing.T, e *env, dir, after, target string) {
	t.Helper()
	t.Run("python-tuf after "+after, func(t *testing.T) {
		if py.noModules {
			testutil.MissingTool(t, py.skip)
		}
		if py.skip != "" {
			t.Skip(py.skip)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, py.python, py.script, filepath.Join(dir, "metadata"), e.srv.URL, target, filepath.Join(dir, "targets"))
		cmd.Env = py.env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("python-tuf refresh and download of %s: %v\n%s", target, err, out)
		}
		got, err := os.ReadFile(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatalf("python-tuf's download: %v (%s)", err, out)
		}
		if want := tarball(t, versionOf(target)); string(got) != string(want) {
			t.Fatalf("python-tuf downloaded %d bytes, not the release", len(got))
		}
	})
}

// versionOf is the version in an artifact path <component>/<platform>/<version>/<file>.
func versionOf(p string) string {
	parts := strings.Split(p, "/")
	if len(parts) < 4 {
		return ""
	}
	return parts[2]
}
