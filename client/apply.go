package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/repo"
)

// ErrAuthorizationRequired: a release turns on a gated feature that has no
// recorded decision; nothing was activated (exit code 4).
var ErrAuthorizationRequired = errors.New("a person must authorize a feature first")

// Apply installs every staged release (or only's): it verifies the staged
// file again (sha256 and code signature), unpacks it into
// <install-root>/<component>/<version>, switches `current` atomically and
// keeps the previous version. A failure leaves the component on its old
// version and state.json as it was.
func (a *Agent) Apply(ctx context.Context, only string) (*CheckReport, error) {
	names, err := a.selectComponents(only)
	if err != nil {
		return nil, err
	}
	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c := st.Components[name]
		if c.Staged == nil {
			continue
		}
		if err := a.install(st, name, c); err != nil {
			return nil, fmt.Errorf("apply %s %s: %w", name, c.Staged.Version, err)
		}
		// Persist after each component: current already points at it.
		if err := a.saveState(st); err != nil {
			return nil, err
		}
		a.log.Info("installed", "component", name, "version", c.Installed)
	}
	return a.report(nil, st), nil
}

// gatedFeatures lists a release's features that need a person's decision
// on this device.
func (a *Agent) gatedFeatures(st *State, rel *Release) []string {
	var ids []string
	for _, f := range rel.Meta.Features {
		if f.Consent == repo.ConsentRequired || (f.Consent == repo.ConsentPHIDevices && a.isPHIDevice(st)) {
			ids = append(ids, f.ID)
		}
	}
	return ids
}

func (a *Agent) install(st *State, name string, c *ComponentState) error {
	rel := c.Staged
	if ids := a.gatedFeatures(st, rel); len(ids) > 0 {
		return fmt.Errorf("%w: %s %s turns on %s, which this agent version cannot ask consent for; it was not installed",
			ErrAuthorizationRequired, name, rel.Version, strings.Join(ids, ", "))
	}
	sig, err := readFileLimited(rel.File+repo.SignatureSuffix, 1<<20)
	if err != nil {
		return fmt.Errorf("staged signature: %w", err)
	}
	if _, err := a.verifyCode(rel.File, sig, rel); err != nil {
		return err
	}
	compDir := filepath.Join(a.cfg.InstallRoot, name)
	if err := os.MkdirAll(compDir, 0o755); err != nil {
		return err
	}
	if rel.Version == "current" || strings.HasPrefix(rel.Version, ".") {
		return verifyf("version %q cannot be installed", rel.Version)
	}
	incoming := filepath.Join(compDir, ".incoming-"+rel.Version)
	if err := os.RemoveAll(incoming); err != nil {
		return err
	}
	if err := os.Mkdir(incoming, 0o755); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(incoming)
		}
	}()
	if err := unpack(rel, incoming); err != nil {
		return classifyTUF(err)
	}
	dest := filepath.Join(compDir, rel.Version)
	if rel.Version == c.Installed {
		return fmt.Errorf("%s %s is already the installed version", name, rel.Version)
	}
	if err := os.RemoveAll(dest); err != nil {
		return err
	}
	if err := atomicfile.Rename(incoming, dest); err != nil {
		return err
	}
	ok = true
	if err := switchCurrent(compDir, rel.Version); err != nil {
		return err
	}
	c.Previous, c.Installed = c.Installed, rel.Version
	c.Staged, c.Available = nil, nil
	c.State, c.LastError = StateUpToDate, ""
	a.dropStaged(name, c)
	pruneVersions(compDir, c.Installed, c.Previous)
	return nil
}

// unpack puts a verified artifact's content into dir.
func unpack(rel *Release, dir string) error {
	name := path.Base(rel.Path)
	switch rel.Meta.Install {
	case repo.InstallArchive:
		lower := strings.ToLower(name)
		switch {
		case strings.HasSuffix(lower, ".zip"):
			return ExtractZip(rel.File, dir)
		case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
			f, err := os.Open(rel.File)
			if err != nil {
				return err
			}
			defer f.Close()
			return ExtractTarGz(f, dir)
		default:
			return fmt.Errorf("%s: archive kind not recognised (want .tar.gz, .tgz or .zip)", name)
		}
	case repo.InstallFile:
		src, err := os.Open(rel.File)
		if err != nil {
			return err
		}
		defer src.Close()
		if err := atomicfile.Write(filepath.Join(dir, name), 0o755, func(w io.Writer) error {
			_, err := io.Copy(w, src)
			return err
		}); err != nil {
			return err
		}
		return nil
	default:
		return fmt.Errorf("install kind %q is not supported by this agent version; nothing was installed", rel.Meta.Install)
	}
}

// switchCurrent points <compDir>/current at version atomically: a relative
// symlink replaced by rename (a pointer file on Windows), then the
// directory is fsynced.
func switchCurrent(compDir, version string) error {
	cur := filepath.Join(compDir, "current")
	tmp := filepath.Join(compDir, ".current.tmp")
	os.Remove(tmp)
	if runtime.GOOS == "windows" {
		return atomicfile.WriteFile(cur, []byte(version+"\n"), 0o644)
	}
	if err := os.Symlink(version, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, cur); err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.SyncDir(compDir)
}

// CurrentVersion reads where <compDir>/current points.
func CurrentVersion(compDir string) (string, error) {
	cur := filepath.Join(compDir, "current")
	if runtime.GOOS == "windows" {
		b, err := readFileLimited(cur, 256)
		return strings.TrimSpace(string(b)), err
	}
	return os.Readlink(cur)
}

// pruneVersions removes installed versions other than keep.
func pruneVersions(compDir string, keep ...string) {
	entries, err := os.ReadDir(compDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || strings.HasPrefix(n, ".") || n == "current" {
			continue
		}
		if _, err := repo.ParseVersion(n); err != nil {
			continue
		}
		kept := false
		for _, k := range keep {
			kept = kept || k == n
		}
		if !kept {
			os.RemoveAll(filepath.Join(compDir, n))
		}
	}
}

// Rollback switches a component back to its previous version.
func (a *Agent) Rollback(ctx context.Context, name string) (*CheckReport, error) {
	if _, err := a.selectComponents(name); err != nil || name == "" {
		return nil, usagef("--component: give one of %v", a.cfg.Components)
	}
	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	c := st.Components[name]
	if c.Previous == "" {
		return nil, fmt.Errorf("%s has no previous version to roll back to", name)
	}
	compDir := filepath.Join(a.cfg.InstallRoot, name)
	if fi, err := os.Stat(filepath.Join(compDir, c.Previous)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s: previous version %s is no longer on disk", name, c.Previous)
	}
	if err := switchCurrent(compDir, c.Previous); err != nil {
		return nil, err
	}
	c.Installed, c.Previous = c.Previous, c.Installed
	updateComponentState(c)
	if err := a.saveState(st); err != nil {
		return nil, err
	}
	return a.report(nil, st), nil
}
