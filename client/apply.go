package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/repo"
)

// ErrAuthorizationRequired: a release turns on a gated feature that has no
// recorded decision; nothing was activated (exit code 4).
var ErrAuthorizationRequired = errors.New("a person must authorize a feature first")

// Apply installs every staged release (or only's). For each, it first runs
// the consent gate (decisions from o are recorded in the consent log before
// anything activates), then verifies the staged file again (sha256 and code
// signature), unpacks it into <install-root>/<component>/<version>,
// switches `current` atomically, writes features.json and keeps the
// previous version. A failure leaves the component on its old version and
// state.json as it was; a release still waiting for a decision returns
// ErrAuthorizationRequired.
func (a *Agent) Apply(ctx context.Context, only string, o ApplyOptions) (*CheckReport, error) {
	names, err := a.selectComponents(only)
	if err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	if err := a.checkDecisionTargets(st, names, o); err != nil {
		return nil, err
	}
	var waiting error
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Each component's audit events and notifications are written
		// once, right after its install is committed (batch.go).
		rep, err := func() (*CheckReport, error) {
			defer a.beginBatch()()
			c := st.Components[name]
			if c.Staged == nil {
				return nil, a.decideInstalled(ctx, st, name, o)
			}
			version := c.Staged.Version
			active, err := a.decide(ctx, st, name, c.Staged, o)
			if errors.Is(err, ErrAuthorizationRequired) {
				a.markAwaiting(name, c, err)
				waiting = errors.Join(waiting, err)
				return nil, nil
			}
			if err != nil {
				return nil, a.failed(fmt.Errorf("apply %s %s: %w", name, version, err), name, version)
			}
			if err := a.install(st, name, c, active); err != nil {
				if errors.Is(err, errRolledBack) {
					return a.report(nil, st), fmt.Errorf("apply %s %s: %w", name, version, err)
				}
				return nil, a.failed(fmt.Errorf("apply %s %s: %w", name, version, err), name, version)
			}
			a.audit(AuditEvent{Event: EventInstalled, Component: name, Version: version, Detail: "active features: " + strings.Join(active, ",")})
			a.resolve(name, NoteUpdateAvailable, NoteStaged, NoteAwaitingAuthorization, NoteFailed, NoteRolledBack, NoteVerificationFailure)
			a.raise(NoteInstalled, "info", name, version, fmt.Sprintf("%s %s was installed", name, version))
			a.log.Info("installed", "component", name, "version", c.Installed)
			return nil, nil
		}()
		if err != nil {
			return rep, err
		}
	}
	if err := a.saveState(st); err != nil {
		return nil, err
	}
	if waiting != nil {
		return a.report(nil, st), waiting
	}
	return a.report(nil, st), nil
}

// checkDecisionTargets refuses --authorize/--decline IDs that name no
// gated feature of a staged or installed release of the selected components.
func (a *Agent) checkDecisionTargets(st *State, names []string, o ApplyOptions) error {
	for _, id := range append(append([]string{}, o.Authorize...), o.Decline...) {
		found := false
		for _, name := range names {
			c := st.Components[name]
			for _, rel := range []*Release{c.Staged, c.InstalledRelease} {
				for _, f := range a.gatedFeatures(st, rel) {
					found = found || f.ID == id
				}
			}
		}
		if !found {
			return usagef("feature %q is not a gated feature of any staged or installed release on this device", id)
		}
	}
	return nil
}

// decideInstalled applies --authorize/--decline to the installed release
// (to turn a feature back on after a revoke, or off), with nothing staged.
func (a *Agent) decideInstalled(ctx context.Context, st *State, name string, o ApplyOptions) error {
	c := st.Components[name]
	if c.InstalledRelease == nil || len(o.Authorize)+len(o.Decline) == 0 {
		return nil
	}
	touches := false
	for _, f := range a.gatedFeatures(st, c.InstalledRelease) {
		touches = touches || slices.Contains(o.Authorize, f.ID) || slices.Contains(o.Decline, f.ID)
	}
	if !touches {
		return nil
	}
	o.Prompter = nil
	active, err := a.decide(ctx, st, name, c.InstalledRelease, o)
	if err != nil && !errors.Is(err, ErrAuthorizationRequired) {
		return err
	}
	if err != nil {
		// Other features still wait: activate only what was decided.
		active = a.decidedActive(st, name, c.InstalledRelease)
	}
	return a.writeFeatures(name, active)
}

// decidedActive lists the features of rel active under standing decisions.
func (a *Agent) decidedActive(st *State, name string, rel *Release) []string {
	decs, err := a.decisions()
	if err != nil {
		decs = nil
	}
	gated := a.gatedFeatures(st, rel)
	var active []string
	for _, f := range rel.Meta.Features {
		isGated := slices.ContainsFunc(gated, func(g repo.Feature) bool { return g.ID == f.ID })
		if !isGated || decisionFor(decs, name, f) == DecisionGranted {
			active = append(active, f.ID)
		}
	}
	return active
}

func (a *Agent) markAwaiting(name string, c *ComponentState, err error) {
	first := c.State != StateAwaitingAuthorization
	c.State = StateAwaitingAuthorization
	a.raise(NoteAwaitingAuthorization, "warning", name, c.Staged.Version,
		fmt.Sprintf("%s %s is staged and waits for a person to authorize its new features: %v", name, c.Staged.Version, strings.TrimPrefix(err.Error(), ErrAuthorizationRequired.Error()+": ")))
	if first {
		a.audit(AuditEvent{Event: EventAwaitingAuthorization, Component: name, Version: c.Staged.Version, Detail: err.Error()})
	}
}

// install puts a staged, decided release in place under the journal (see
// journal.go), runs its installer and health check, and commits it to
// state.json, or undoes everything and marks the release failed.
func (a *Agent) install(st *State, name string, c *ComponentState, active []string) error {
	rel := c.Staged
	var sig []byte
	if rel.Meta.Codesign == repo.CodesignCMS {
		var err error
		if sig, err = a.readStaged(rel.File+repo.SignatureSuffix, 1<<20); err != nil {
			return fmt.Errorf("staged signature: %w", err)
		}
	}
	if _, err := a.verifyStaged(rel.File, sig, rel); err != nil {
		if errors.Is(err, ErrVerification) {
			// The staged copy changed on disk or was lost in a power cut
			// before it reached the disk: drop it, so the next check
			// downloads the release again instead of failing here forever.
			a.dropStaged(name, c)
			updateComponentState(c)
			if serr := a.saveState(st); serr != nil {
				return errors.Join(err, serr)
			}
		}
		return err
	}
	if rel.Meta.Install == repo.InstallSelf {
		return a.selfUpdate(st, name, c)
	}
	compDir := filepath.Join(a.cfg.InstallRoot, name)
	if err := os.MkdirAll(compDir, 0o755); err != nil {
		return err
	}
	if rel.Version == "current" || strings.HasPrefix(rel.Version, ".") {
		return verifyf("version %q cannot be installed", rel.Version)
	}
	if rel.Version == c.Installed {
		return fmt.Errorf("%s %s is already the installed version", name, rel.Version)
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
	if err := a.unpack(rel, incoming); err != nil {
		return classifyTUF(err)
	}
	dest := filepath.Join(compDir, rel.Version)
	if err := os.RemoveAll(dest); err != nil {
		return err
	}
	if err := atomicfile.Rename(incoming, dest); err != nil {
		return err
	}
	ok = true

	before, err := a.ActiveFeatures(name)
	if err != nil {
		return err
	}
	j := intent{Component: name, From: c.Installed, To: rel.Version, FromFeatures: before}
	if j.FromFeatures == nil {
		j.FromFeatures = []string{}
	}
	if err := a.writeJournal(j); err != nil {
		return err
	}
	// Never let a feature be active for a version that has no decision for
	// it: while switching, only features active before and after stay on.
	var both []string
	for _, id := range before {
		if slices.Contains(active, id) {
			both = append(both, id)
		}
	}
	if err := a.writeFeatures(name, both); err != nil {
		return err
	}
	if err := switchCurrent(compDir, rel.Version); err != nil {
		return err
	}
	if rel.Meta.Install == repo.InstallInstaller {
		if err := a.runInstaller(dest, rel); err != nil {
			return a.abandon(st, name, c, j, fmt.Errorf("installer failed: %w", err))
		}
	}
	if err := a.writeFeatures(name, active); err != nil {
		return err
	}
	if err := a.healthCheck(dest, rel); err != nil {
		return a.abandon(st, name, c, j, fmt.Errorf("health check failed: %w", err))
	}
	// Commit: state.json now says the new version is installed.
	c.markInstalled(rel)
	if err := a.saveState(st); err != nil {
		return err
	}
	if err := a.clearJournal(); err != nil {
		return err
	}
	a.cacheArtifact(name, rel)
	a.dropStaged(name, c)
	pruneVersions(compDir, c.Installed, c.Previous)
	return nil
}

// markInstalled records rel as the installed version, the one before it
// as previous, and clears what was pending (saved, this is the commit).
func (c *ComponentState) markInstalled(rel *Release) {
	installed := *rel
	installed.File = ""
	c.Previous, c.Installed = c.Installed, rel.Version
	c.PreviousRelease, c.InstalledRelease = c.InstalledRelease, &installed
	c.Staged, c.Available, c.Failed = nil, nil, nil
	c.State, c.LastError = StateUpToDate, ""
}

// markFailed holds rel back (it is not retried until a newer release
// appears) with why as the component's last error.
func (c *ComponentState) markFailed(rel *Release, why string) {
	failed := *rel
	failed.File = ""
	c.Failed = &failed
	c.State, c.LastError = StateFailed, why
}

// errRolledBack marks an install that was undone after its installer or
// health check failed; the component is back on its old version.
var errRolledBack = errors.New("rolled back")

// abandon undoes an install after its installer or health check failed,
// marks the release failed (it is not retried until a newer one appears),
// and says so.
func (a *Agent) abandon(st *State, name string, c *ComponentState, j intent, why error) error {
	if err := a.undo(j); err != nil {
		return fmt.Errorf("%v; undoing it also failed: %w", why, err)
	}
	c.markFailed(c.Staged, why.Error())
	a.dropStaged(name, c)
	if err := a.saveState(st); err != nil {
		return err
	}
	if err := a.clearJournal(); err != nil {
		return err
	}
	os.RemoveAll(filepath.Join(a.cfg.InstallRoot, name, j.To))
	a.audit(AuditEvent{Event: EventRollback, Component: name, Version: j.From, Detail: fmt.Sprintf("%s %s: %v", name, j.To, why)})
	a.raise(NoteFailed, "warning", name, j.To, fmt.Sprintf("%s %s could not be installed (%v) and was rolled back to %s; it will not be retried until a newer release appears", name, j.To, why, orNone(j.From)))
	return fmt.Errorf("%w to %s: %v", errRolledBack, orNone(j.From), why)
}

// healthCheck runs the release's health_check in its version directory.
func (a *Agent) healthCheck(dir string, rel *Release) error {
	if len(rel.Meta.HealthCheck) == 0 {
		return nil
	}
	// The program is always one of the release's own files (never a name
	// looked up in PATH): release metadata cannot run anything unsigned.
	argv := append([]string{filepath.Join(dir, filepath.FromSlash(rel.Meta.HealthCheck[0]))}, rel.Meta.HealthCheck[1:]...)
	if err := repo.ValidateHealthCheck(rel.Meta.HealthCheck); err != nil {
		return verifyf("%v", err)
	}
	return a.runIn(dir, argv, nil, durationOr(a.cfg.HealthTimeout, time.Minute), rel)
}

// runInstaller runs the installer command the release declares.
func (a *Agent) runInstaller(dir string, rel *Release) error {
	if err := repo.ValidateInstaller(rel.Meta.Installer); err != nil {
		return verifyf("%v", err)
	}
	file := filepath.Join(dir, path.Base(rel.Path))
	argv := make([]string, len(rel.Meta.Installer))
	for i, arg := range rel.Meta.Installer {
		argv[i] = strings.ReplaceAll(arg, "{file}", file)
	}
	return a.runIn(dir, argv, []string{"BCUPDATE_INSTALLER=" + file}, durationOr(a.cfg.InstallerTimeout, 30*time.Minute), rel)
}

// runIn runs argv (validated by the caller) with dir as working directory
// and a timeout.
func (a *Agent) runIn(dir string, argv, env []string, timeout time.Duration, rel *Release) error {
	prog := argv[0]
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env, "BCUPDATE_COMPONENT="+rel.Meta.Component, "BCUPDATE_VERSION="+rel.Version)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%s did not finish within %s", strings.Join(argv, " "), timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 300 {
			msg = msg[len(msg)-300:]
		}
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.ReplaceAll(msg, "\n", " | "))
	}
	return nil
}

// unpack puts a verified artifact's content into dir. The staged file is
// opened through the state directory's confined root (root.go), so a link
// cannot swap in other bytes.
func (a *Agent) unpack(rel *Release, dir string) error {
	name := path.Base(rel.Path)
	src, err := a.openStaged(rel.File)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	switch rel.Meta.Install {
	case repo.InstallArchive:
		lower := strings.ToLower(name)
		switch {
		case strings.HasSuffix(lower, ".zip"):
			return ExtractZipReader(src, fi.Size(), dir)
		case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
			return ExtractTarGz(src, dir)
		default:
			return fmt.Errorf("%s: archive kind not recognised (want .tar.gz, .tgz or .zip)", name)
		}
	case repo.InstallFile, repo.InstallInstaller:
		// The staged file was just verified and fsynced: link it in place (no
		// second copy of the bytes), or copy it across file systems. The link
		// is kept only if it is the very file opened through the root.
		dst := filepath.Join(dir, name)
		if err := os.Link(rel.File, dst); err == nil {
			if li, err := os.Lstat(dst); err == nil && os.SameFile(li, fi) {
				if err := os.Chmod(dst, 0o755); err != nil {
					return err
				}
				return atomicfile.SyncDir(dir)
			}
			os.Remove(dst)
		}
		return atomicfile.Write(dst, 0o755, func(w io.Writer) error {
			_, err := io.CopyBuffer(w, src, make([]byte, 1<<20))
			return err
		})
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
	from := c.Installed
	c.Installed, c.Previous = c.Previous, c.Installed
	c.InstalledRelease, c.PreviousRelease = c.PreviousRelease, c.InstalledRelease
	// A person rolled back: the release they left is not installed again
	// by the service until a newer one appears.
	if c.PreviousRelease != nil {
		held := *c.PreviousRelease
		c.Failed = &held
		c.LastError = "rolled back by hand from " + from
	}
	c.Staged, c.Available = nil, nil
	a.dropStaged(name, c)
	updateComponentState(c)
	if err := a.saveState(st); err != nil {
		return nil, err
	}
	active := []string{} // metadata unknown (state rebuilt): nothing is active until a check re-learns it
	if c.InstalledRelease != nil {
		active = a.decidedActive(st, name, c.InstalledRelease)
	}
	if err := a.writeFeatures(name, active); err != nil {
		return nil, err
	}
	a.audit(AuditEvent{Event: EventRollback, Component: name, Version: c.Installed, Detail: "rolled back from " + from})
	a.raise(NoteRolledBack, "warning", name, c.Installed, fmt.Sprintf("%s was rolled back from %s to %s", name, from, c.Installed))
	return a.report(nil, st), nil
}
