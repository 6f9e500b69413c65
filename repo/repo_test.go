package repo_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

func newKeys(t *testing.T) repo.Keys {
	t.Helper()
	keys := repo.Keys{}
	for _, role := range repo.TopLevelRoles {
		k, err := signer.GenerateKey(signer.KeyTypeEd25519)
		if err != nil {
			t.Fatal(err)
		}
		s, err := signer.RoleSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		keys[role] = []signature.Signer{s}
	}
	return keys
}

type memRepo map[string][]byte

func (m memRepo) read(name string) ([]byte, error) {
	b, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return b, nil
}

func (m memRepo) write(files []repo.File) {
	for _, f := range files {
		m[f.Name] = f.Data
	}
}

func TestNewLoadCommit(t *testing.T) {
	keys := newKeys(t)
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	r, rootFile, err := repo.New(keys, now)
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Commit(keys, now)
	if err != nil {
		t.Fatal(err)
	}
	files = append([]repo.File{rootFile}, files...)
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); got != "1.root.json 1.targets.json 1.snapshot.json timestamp.json" {
		t.Fatalf("files %s", got)
	}
	if !r.Root.Signed.ConsistentSnapshot || !r.Root.Signed.Expires.Equal(now.Add(365*24*time.Hour)) {
		t.Fatalf("root %+v", r.Root.Signed)
	}
	m := memRepo{}
	m.write(files)
	loaded, err := repo.Load(m.read)
	if err != nil {
		t.Fatal(err)
	}
	tgt := repo.NewTarget("notification-client/windows-amd64/1.0.0/nc.tar.gz", []byte("abc"), nil)
	if added, err := loaded.AddImmutable(tgt); err != nil || !added {
		t.Fatal(added, err)
	}
	files, err = loaded.Commit(keys, now)
	if err != nil {
		t.Fatal(err)
	}
	if files[len(files)-1].Name != "timestamp.json" || files[0].Name != "2.targets.json" {
		t.Fatalf("commit order %v", files)
	}
	m.write(files)
	again, err := repo.Load(m.read)
	if err != nil {
		t.Fatal(err)
	}
	if again.Timestamp.Signed.Version != 2 || again.Snapshot.Signed.Version != 2 {
		t.Fatalf("versions %d %d", again.Timestamp.Signed.Version, again.Snapshot.Signed.Version)
	}
	// Same content again: no-op. Other content: conflict.
	if added, err := again.AddImmutable(tgt); err != nil || added {
		t.Fatalf("re-adding identical target: added=%v err=%v", added, err)
	}
	other := repo.NewTarget(tgt.Path, []byte("abd"), nil)
	if _, err := again.AddImmutable(other); !errors.Is(err, repo.ErrConflict) {
		t.Fatalf("want conflict, got %v", err)
	}
	// The same bytes with other release metadata: the error names the field.
	custom := json.RawMessage(`{"bc":{"health_check":["bin/nc","--version"]}}`)
	meta := repo.NewTarget(tgt.Path, []byte("abc"), &custom)
	if _, err := again.AddImmutable(meta); !errors.Is(err, repo.ErrConflict) || !strings.Contains(err.Error(), "same file but other release metadata (health_check)") {
		t.Fatalf("want a conflict naming health_check, got %v", err)
	}
}

func TestLoadRejectsTampering(t *testing.T) {
	keys := newKeys(t)
	r, rootFile, err := repo.New(keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Commit(keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	files = append([]repo.File{rootFile}, files...)
	cases := map[string]func(m memRepo){
		"timestamp signature": func(m memRepo) {
			m["timestamp.json"] = []byte(strings.Replace(string(m["timestamp.json"]), `"version": 1`, `"version": 7`, 1))
		},
		"snapshot bytes": func(m memRepo) { m["1.snapshot.json"] = append(m["1.snapshot.json"], ' ') },
		"targets bytes":  func(m memRepo) { m["1.targets.json"] = append(m["1.targets.json"], ' ') },
		"missing root":   func(m memRepo) { delete(m, "1.root.json") },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			m := memRepo{}
			m.write(files)
			mutate(m)
			if _, err := repo.Load(m.read); err == nil {
				t.Fatal("tampered repository loaded")
			}
		})
	}
	t.Run("no repository", func(t *testing.T) {
		if _, err := repo.Load(memRepo{}.read); !errors.Is(err, repo.ErrNotFound) {
			t.Fatalf("want ErrNotFound, got %v", err)
		}
	})
}

func TestCommitWithWrongKey(t *testing.T) {
	keys := newKeys(t)
	r, _, err := repo.New(keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Commit(keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	wrong := newKeys(t)
	keys[repo.RoleTargets] = wrong[repo.RoleTargets]
	_, err = r.Commit(keys, time.Now())
	var wk *repo.WrongKeyError
	var unsigned *metadata.ErrUnsignedMetadata
	if !errors.Is(err, repo.ErrWrongKey) || !errors.As(err, &wk) || !errors.As(err, &unsigned) {
		t.Fatalf("want a WrongKeyError wrapping go-tuf's, got %v", err)
	}
	if wk.Role != repo.RoleTargets || wk.Have != 0 || wk.Need != 1 || wk.OtherRole != "" ||
		err.Error() != "the targets key given is not one of the repository root's targets keys (0 of the 1 signatures needed)" {
		t.Fatalf("%+v: %v", wk, err)
	}
	// A key of another role is named as such.
	keys[repo.RoleTargets] = keys[repo.RoleSnapshot]
	_, err = r.Commit(keys, time.Now())
	if !errors.As(err, &wk) || wk.OtherRole != repo.RoleSnapshot ||
		err.Error() != "the targets key given is the repository's snapshot key, not one of the repository root's targets keys (0 of the 1 signatures needed)" {
		t.Fatalf("key of another role: %v", err)
	}
}

// TestCommandsRunOnlySignedCode: release metadata (signed by TUF only)
// cannot name a command that runs anything but the code-signed files.
func TestCommandsRunOnlySignedCode(t *testing.T) {
	okInstallers := [][]string{{"{file}", "/quiet", "/norestart"}, {"msiexec", "/i", "{file}", "/qn", "/norestart"}, {"sh", "{file}", "--quiet"}}
	badInstallers := [][]string{{}, {"sh", "-c", "rm -rf /"}, {"msiexec", "/i", `\\evil\share\x.msi`}, {"msiexec", "/i", "{file}", "TRANSFORMS=evil.mst"},
		{"cmd", "/c", "{file}"}, {"{file}", "; rm -rf /"}, {"powershell", "{file}"}}
	for _, argv := range okInstallers {
		if err := repo.ValidateInstaller(argv); err != nil {
			t.Errorf("%q refused: %v", argv, err)
		}
	}
	for _, argv := range badInstallers {
		if err := repo.ValidateInstaller(argv); err == nil {
			t.Errorf("%q accepted", argv)
		}
	}
	for _, argv := range [][]string{{"bin/notification-client", "--version"}, {"nc.exe", "--health"}} {
		if err := repo.ValidateHealthCheck(argv); err != nil {
			t.Errorf("%q refused: %v", argv, err)
		}
	}
	// A bare name is a file inside the release: the agent runs <version>/sh,
	// never a program from PATH.
	if err := repo.ValidateHealthCheck([]string{"sh", "--version"}); err != nil {
		t.Errorf("bare name: %v", err)
	}
	for _, argv := range [][]string{{"sh", "-c", "touch /tmp/x"}, {"/bin/sh"}, {"../../bin/sh"}, {"bin/../../../bin/sh"}, {"bin/x", "$(reboot)"}, {"./bin/x"}} {
		if err := repo.ValidateHealthCheck(argv); err == nil {
			t.Errorf("%q accepted", argv)
		}
	}
}

func TestFeatureTextHasNoEscapes(t *testing.T) {
	base := repo.Release{Component: "nc", Version: "1.0.0", Platform: "linux-amd64", Install: "file", Codesign: "cms"}
	for name, f := range map[string]repo.Feature{
		"ANSI escape in description": {ID: "x", Title: "File transfer", Description: "Harmless.\x1b[2K\x1b[1AAuthorize?", Consent: "required"},
		"carriage return in title":   {ID: "x", Title: "Nothing\rFile transfer", Description: "d", Consent: "required"},
		"bidi override":              {ID: "x", Title: "File \u202etransfer", Description: "d", Consent: "required"},
	} {
		r := base
		r.Features = []repo.Feature{f}
		if r.Validate() == nil {
			t.Errorf("%s accepted", name)
		}
	}
	r := base
	r.Features = []repo.Feature{{ID: "x", Title: "File transfer", Description: "Line one.\n\tLine two.", Consent: "required"}}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestReleaseIndex(t *testing.T) {
	const c, p = "notification-client", "linux-amd64"
	ix := &repo.ReleaseIndex{Releases: map[string]string{"1.0.0": c + "/" + p + "/1.0.0/nc.tar.gz", "1.1.0": c + "/" + p + "/1.1.0/other-name.zip"}}
	back, err := repo.ParseReleaseIndex(ix.Marshal(), c, p)
	if err != nil || len(back.Releases) != 2 || back.Releases["1.1.0"] != ix.Releases["1.1.0"] {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if repo.ReleasesPath(c, p) != c+"/"+p+"/releases.json" {
		t.Fatal(repo.ReleasesPath(c, p))
	}
	for name, data := range map[string]string{
		"other version":   `{"releases":{"1.0.0":"notification-client/linux-amd64/1.0.1/nc.tar.gz"}}`,
		"other component": `{"releases":{"1.0.0":"other/linux-amd64/1.0.0/nc.tar.gz"}}`,
		"other platform":  `{"releases":{"1.0.0":"notification-client/windows-amd64/1.0.0/nc.tar.gz"}}`,
		"not a version":   `{"releases":{"latest":"notification-client/linux-amd64/latest/nc.tar.gz"}}`,
		"escaping path":   `{"releases":{"1.0.0":"notification-client/linux-amd64/1.0.0/../../x"}}`,
		"unknown field":   `{"releases":{},"extra":1}`,
		"trailing":        `{"releases":{}} {}`,
		"too large":       `{"releases":{}}` + strings.Repeat(" ", repo.MaxReleaseIndexSize),
	} {
		if _, err := repo.ParseReleaseIndex([]byte(data), c, p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
